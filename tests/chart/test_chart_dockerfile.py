"""The Dockerfile, checked statically (no Docker engine here): multi-stage on a slim Python
3.11, a runtime stage without compilers, a non-root numeric USER, the l5d-twisted entrypoint."""

from __future__ import annotations

import json
import re

from chart_testlib import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for ins in instructions(DOCKERFILE):
        if ins[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(ins)
    return found


def test_multi_stage_on_slim_python_311() -> None:
    args = dict(rest.split("=", 1) for word, rest in instructions(DOCKERFILE) if word == "ARG" and "=" in rest)
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    all_stages = stages()
    assert len(all_stages) >= 2
    assert all(s[0][1].startswith("${PYTHON_IMAGE}") for s in all_stages)


def test_runtime_stage_has_no_build_tools_and_runs_as_non_root() -> None:
    runtime = stages()[-1]
    text = " ".join(rest for _, rest in runtime)
    for tool in ("build-essential", "gcc", "make", "apt-get install"):
        assert tool not in text
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"} and users[-1].split(":")[0].isdigit()
    entrypoint = [rest for word, rest in runtime if word == "ENTRYPOINT"]
    assert json.loads(entrypoint[-1]) == ["l5d-twisted"]
    # Only wheels come from the build stage.
    assert "--no-index" in text and "from=build" in text


def test_build_stage_builds_wheels_of_the_project() -> None:
    build = stages()[0]
    assert any(word == "RUN" and "pip wheel" in rest for word, rest in build)
    copied = " ".join(rest for word, rest in build if word == "COPY")
    assert "setup.py" in copied and "l5d_twisted" in copied


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", "tests", "chart", ".tools"} <= set(ignored)
