"""The notebooks: each one executes top to bottom, and each is what its generator writes.

Every notebook in ``notebooks/`` runs in a fresh kernel with nbclient, from a
temporary working directory, with a time limit per cell. The committed files
carry no outputs and must equal what ``notebooks/build_notebooks.py`` builds,
so an edit made in Jupyter and not in the generator is caught here.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT = 120  # seconds for one cell; a notebook is meant to take < 60 s in all
NOTEBOOK_TIMEOUT = 300  # seconds for a whole notebook, kernel start included


def _generator():
    spec = importlib.util.spec_from_file_location(
        "build_notebooks", NOTEBOOK_DIR / "build_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_generated_notebook_is_committed():
    built = {f"{name}.ipynb" for name in _generator().NOTEBOOKS}
    assert built == {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_its_generator_output_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: committed with outputs"
            assert cell.execution_count is None, f"{path.name}: committed with execution counts"
    expected = json.loads(nbformat.writes(_generator().make(path.stem)))
    assert json.loads(path.read_text(encoding="utf-8")) == expected, (
        f"{path.name} differs from what notebooks/build_notebooks.py writes: edit the "
        "generator and run `python notebooks/build_notebooks.py`"
    )


@pytest.mark.timeout(NOTEBOOK_TIMEOUT)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the failing cell
    elapsed = time.perf_counter() - start
    errors = [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    print(f"{path.name}: {elapsed:.1f} s")  # shown with -s or -rP: the < 60 s budget
