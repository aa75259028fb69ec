"""docs/config-reference.md is what `l5d-twisted check --reference` prints (kept in sync)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_config_reference_doc_is_current() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "l5d_twisted", "check", "--reference"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    committed = (REPO / "docs" / "config-reference.md").read_text()
    assert printed == committed, (
        "regenerate: python3 -m l5d_twisted check --reference > docs/config-reference.md"
    )


def test_output_cut_short_by_the_reader_is_not_an_error() -> None:
    """`l5d-twisted check --reference | head -1`: no BrokenPipeError traceback.

    The pipe's read end is closed before the command starts, so its first write fails
    (deterministically, not by racing the reader).
    """
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "l5d_twisted", "check", "--reference"],
            cwd=REPO,
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert b"Traceback" not in proc.stderr and b"BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 0
