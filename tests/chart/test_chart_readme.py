"""The chart README lists every value and is in sync with the values files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chart_testlib import CHART

sys.path.insert(0, str(CHART / "tools"))
import gen_readme  # noqa: E402

VALUES_FILES = [
    CHART / "values.yaml",
    *(CHART / "charts" / s / "values.yaml" for s in gen_readme.SUBCHARTS),
]


def test_every_value_is_documented() -> None:
    for path in VALUES_FILES:
        assert gen_readme.undocumented(path) == [], f"undocumented values in {path}"


def test_readme_is_in_sync() -> None:
    result = subprocess.run(
        [sys.executable, str(CHART / "tools" / "gen_readme.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_readme_lists_documented_keys_with_defaults() -> None:
    readme = (CHART / "README.md").read_text()
    assert "| mesh.admin.shutdownGraceMs | int | `10000` |" in readme
    assert "| prometheus.slo.successRate | float | `0.999` |" in readme
    assert '| hello-world.world.name | string | `"world-v1"` |' in readme


def test_check_detects_drift(tmp_path: Path) -> None:
    text = "# -- documented\na: 1\nb:\n  c: 2\n"
    path = tmp_path / "values.yaml"
    path.write_text(text)
    assert gen_readme.undocumented(path) == ["b.c"]
    assert gen_readme.documented_keys(text) == {("a",): "documented"}
