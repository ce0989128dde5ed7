"""Every tutorial in ``examples/*.ipynb`` runs top to bottom without a cell error.

Each notebook is executed with nbclient in a fresh ``python3`` kernel whose working directory
is a temporary folder, with ``NEUROGATE_DATA_ROOT`` pointing at a temporary dataset root shared
by the notebooks of one session, so nothing lands in the repository. Select or skip them with
the ``notebooks`` marker: ``pytest -m notebooks`` / ``pytest -m "not notebooks"``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
CELL_TIMEOUT_S = 600

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("datasets")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(
    notebook: Path, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = nbformat.read(notebook, as_version=4)
    # The kernel inherits this process's environment: headless plots, data in the temp root.
    monkeypatch.setenv("NEUROGATE_DATA_ROOT", str(data_root))
    # The kernel runs in a temp dir: put this checkout first so it tests the code under test,
    # not whatever copy of neurogate is installed.
    root = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{notebook.name}: a cell failed\n{err}", pytrace=False)
    elapsed = time.perf_counter() - start
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors, f"{notebook.name}: error outputs {errors}"
    print(f"{notebook.name}: executed in {elapsed:.0f} s")
