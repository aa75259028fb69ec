"""The mesh config rendered into the ConfigMap is accepted by `l5d-twisted check` for every
ci values file, and what the chart generates from bad values is rejected with the line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from chart_testlib import CI_VALUES, REPO, mesh_config_text, render


def check(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "linkerd.yaml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "l5d_twisted", "check", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


@pytest.mark.parametrize("values_file", [pytest.param(p, id=p.name) for p in CI_VALUES])
def test_rendered_config_passes_check(tmp_path: Path, values_file: Path) -> None:
    docs = render("helm4", [values_file])
    configmap = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-config")
    )
    result = check(str(configmap["data"]["linkerd.yaml"]), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok"


def test_check_names_the_line_of_a_bad_generated_value(tmp_path: Path) -> None:
    text = mesh_config_text(render(sets=["mesh.client.loadBalancer.kind=bogus"]))
    result = check(text, tmp_path)
    assert result.returncode != 0
    assert (
        "routers[0].client.loadBalancer.kind: unknown loadBalancer kind 'bogus'"
        in result.stdout + result.stderr
    )
