"""The suite's shared helpers from tests/conftest.py, imported by file path.

``from conftest import ...`` is not safe: pytest registers every directory's conftest.py
as the module ``conftest``, so by the time these tests are collected the name may belong
to another directory's conftest.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NAME = "_l5d_tests_root_conftest"


def _load() -> object:
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    path = Path(__file__).resolve().parent.parent / "conftest.py"
    spec = importlib.util.spec_from_file_location(_NAME, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module
    spec.loader.exec_module(module)
    return module


_root = _load()
REPO: Path = _root.REPO  # type: ignore[attr-defined]
free_port = _root.free_port  # type: ignore[attr-defined]
wait_for_port = _root.wait_for_port  # type: ignore[attr-defined]
wait_until = _root.wait_until  # type: ignore[attr-defined]
