"""The notebooks: each source executes top to bottom, and each committed notebook is its source.

A notebook's source is ``notebooks/NN_name.py`` (jupytext py:percent, linted by
ruff); ``python notebooks/render.py`` executes it and commits the result,
outputs and figures included, as ``notebooks/NN_name.ipynb``. Here every source
runs in a fresh kernel with nbclient from a temporary working directory, with a
time limit per cell, exactly as ``render.py`` runs it; and each committed
``.ipynb`` must hold the cells of its source (so an edit made in one and not in
the other is caught) and have been executed (its figures are what GitHub shows).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("jupytext")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK_TIMEOUT = 300  # seconds for a whole notebook, kernel start included


def _render():
    spec = importlib.util.spec_from_file_location("render", NOTEBOOK_DIR / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _render()
SOURCES = render.sources()


def _cells(nb) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in nb.cells]


def test_every_source_has_its_notebook_figure_and_readme_entry():
    assert len(SOURCES) >= 7
    notebooks = {p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")}
    assert notebooks == {p.stem for p in SOURCES}, "render every source: notebooks/render.py"
    readme = (NOTEBOOK_DIR / "README.md").read_text(encoding="utf-8")
    embedded = set(re.findall(r"!\[[^\]]*\]\(images/([0-9]{2}_\w+)\.png\)", readme))
    for source in SOURCES:
        assert (NOTEBOOK_DIR / "images" / f"{source.stem}.png").is_file(), source.stem
        assert source.stem in embedded, f"notebooks/README.md does not show {source.stem}'s figure"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_committed_notebook_has_the_cells_of_its_source_and_their_outputs(source):
    committed = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    assert _cells(committed) == _cells(render.load(source)), (
        f"{source.with_suffix('.ipynb').name} differs from {source.name}: edit the .py "
        f"source and run `python notebooks/render.py {source.stem}`"
    )
    code = [cell for cell in committed.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code), "committed unexecuted"
    assert not [out for cell in code for out in cell.outputs if out.output_type == "error"]
    figures = [out for cell in code for out in cell.outputs if "image/png" in out.get("data", {})]
    assert figures, f"{source.stem}.ipynb has no figure"


@pytest.mark.timeout(NOTEBOOK_TIMEOUT)
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_runs(source, tmp_path):
    nb = render.load(source)
    elapsed = render.execute(nb, tmp_path)  # raises CellExecutionError naming the failing cell
    errors = [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    assert render.figure(nb) is not None, f"{source.stem} drew no figure"
    print(f"{source.name}: {elapsed:.1f} s")  # shown with -s or -rP: the < 60 s budget
