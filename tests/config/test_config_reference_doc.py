"""docs/config-reference.md is what `l5d-twisted check --reference` prints (kept in sync)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_config_reference_doc_is_current() -> None:
    printed = subprocess.run([sys.executable, "-m", "l5d_twisted", "check", "--reference"], cwd=REPO, capture_output=True, text=True, timeout=120, check=True).stdout
    committed = (REPO / "docs" / "config-reference.md").read_text()
    assert printed == committed, "regenerate: python3 -m l5d_twisted check --reference > docs/config-reference.md"
