"""The ``namerd`` fixture: a real ``l5d-twisted namerd`` for one test, stopped by PID."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from l5d_testing import Processes
from namerd_helpers import NamerdProcess, start_namerd


@pytest.fixture
def namerd(processes: Processes, tmp_path: Path) -> Iterator[NamerdProcess]:
    running = start_namerd(processes, tmp_path)
    yield running
    processes.stop(running.proc)
