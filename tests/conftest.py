"""Fixtures for the whole suite; the helpers themselves live in ``l5d_testing``.

(Helpers are imported from a uniquely named module, not from ``conftest``: with several
conftest.py files, ``import conftest`` picks whichever was imported first.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from l5d_testing import Processes, free_port, port_open, wait_for_port, wait_until  # noqa: F401  (re-exported)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()
