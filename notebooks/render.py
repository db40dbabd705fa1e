"""Execute the notebooks from their sources and write them with their outputs.

Usage::

    python notebooks/render.py                  # every notebook
    python notebooks/render.py 03_codecs        # or some (names or paths)

A notebook's source is a jupytext py:percent file, ``notebooks/NN_name.py``
(``# %%`` code cells, ``# %% [markdown]`` text cells), linted by ruff like any
module. This script runs each source top to bottom in a fresh kernel, from a
temporary working directory, and writes beside it:

* ``NN_name.ipynb`` — the executed notebook, outputs and figures included,
  so it renders when browsed on GitHub (commit it with its source);
* ``images/NN_name.png`` — one figure from it for ``notebooks/README.md``:
  the last figure of the cell tagged ``readme-figure``
  (``# %% tags=["readme-figure"]``), else the notebook's first figure.

Cell ids and metadata are fixed, so re-rendering changes only the outputs.
``tests/test_notebooks.py`` loads and executes notebooks with :func:`load`
and :func:`execute` from here, and checks each committed ``.ipynb`` has the
cells of its source.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import jupytext
import nbclient
import nbformat

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
FIGURE_TAG = "readme-figure"
CELL_TIMEOUT = 120  # seconds for one cell; a whole notebook is meant to take < 60 s
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
# figures at a modest resolution keep the committed notebooks small
MATPLOTLIBRC = "figure.dpi: 72\n"


def sources() -> list[Path]:
    """Every notebook source, ``notebooks/NN_name.py``, in order."""
    return sorted(HERE.glob("[0-9][0-9]_*.py"))


def metadata() -> nbformat.NotebookNode:
    """The notebook metadata we commit (the kernel's versions would change on every run)."""
    return nbformat.from_dict({"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}})


def load(source: Path) -> nbformat.NotebookNode:
    """The notebook of a py:percent source, without outputs, with stable ids and metadata."""
    nb = jupytext.read(source, fmt="py:percent")
    nb.metadata = metadata()
    for number, cell in enumerate(nb.cells):
        cell.id = f"cell-{number:02d}"
        tags = cell.metadata.get("tags")  # jupytext's own keys (lines_to_next_cell) go
        cell.metadata = nbformat.from_dict({"tags": tags} if tags else {})
    return nb


def execute(nb: nbformat.NotebookNode, workdir: Path) -> float:
    """Run ``nb`` in place in a fresh kernel started in ``workdir``; the seconds it took.

    Raises nbclient's ``CellExecutionError`` (naming the cell) when a cell fails.
    """
    rc = workdir / "matplotlibrc"
    rc.write_text(MATPLOTLIBRC)
    env = os.environ.copy()
    env["MATPLOTLIBRC"] = str(rc)
    src = str(HERE.parent / "src")  # the kernel imports zarrflow from this checkout
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name=KERNELSPEC["name"],
        resources={"metadata": {"path": str(workdir)}},
        record_timing=False,
    )
    start = time.perf_counter()
    client.execute(env=env)
    elapsed = time.perf_counter() - start
    nb.metadata = metadata()
    return elapsed


def figure(nb: nbformat.NotebookNode) -> bytes | None:
    """The PNG for the README: the tagged cell's last figure, else the first figure."""
    tagged: list[bytes] = []
    every: list[bytes] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                image = base64.b64decode(png)
                every.append(image)
                if FIGURE_TAG in cell.metadata.get("tags", []):
                    tagged.append(image)
    if tagged:
        return tagged[-1]
    return every[0] if every else None


def render(source: Path) -> float:
    """Execute one source; write its ``.ipynb`` and README figure; the seconds it ran."""
    nb = load(source)
    with tempfile.TemporaryDirectory(prefix=f"render-{source.stem}-") as workdir:
        elapsed = execute(nb, Path(workdir))
    nbformat.write(nb, source.with_suffix(".ipynb"))
    png = figure(nb)
    if png is not None:
        IMAGES.mkdir(exist_ok=True)
        (IMAGES / f"{source.stem}.png").write_bytes(png)
    return elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebooks to render (default: all)")
    args = parser.parse_args(argv)
    chosen = sources()
    if args.names:
        wanted = {Path(name).stem for name in args.names}
        chosen = [s for s in chosen if s.stem in wanted]
        missing = wanted - {s.stem for s in chosen}
        if missing:
            parser.error(f"no notebook source for {sorted(missing)} in {HERE}")
    for source in chosen:
        elapsed = render(source)
        print(f"{source.stem}: executed in {elapsed:.1f} s -> {source.stem}.ipynb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
