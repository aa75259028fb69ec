"""The fuzz suite's running mesh: one proxy, two backends, a canary (see ``fuzz_mesh``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fuzz_mesh import FuzzMesh, MeshHolder


@pytest.fixture(scope="module")
def mesh_holder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshHolder]:
    holder = MeshHolder(tmp_path_factory)
    try:
        yield holder
    finally:
        holder.close()


@pytest.fixture
def mesh(mesh_holder: MeshHolder) -> FuzzMesh:
    """A healthy proxy: the module's, or a new one when the last test left it unhealthy."""
    return mesh_holder.healthy()
