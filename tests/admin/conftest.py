"""Fixtures the admin's browser tests share: a fake mesh's admin server and one Chromium."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from admin_helpers import browser_session
from l5d_testing import Processes, free_port, wait_for_port

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def fake_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The admin server of a fake mesh (tests/admin/fake_mesh.py) with live metrics."""
    processes = Processes(tmp_path_factory.mktemp("fake_mesh"))
    try:
        port = free_port()
        processes.start(
            sys.executable,
            str(HERE / "fake_mesh.py"),
            "--port",
            str(port),
            "--sample-interval",
            "0.5",
            name="fake_mesh",
        )
        wait_for_port("127.0.0.1", port)
        yield f"http://127.0.0.1:{port}"
    finally:
        processes.stop_all()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from browser_session()
