"""README.md's promises, run as a reader would: the tour as a script, the test command as in CI.

The tour is the first ``python`` code block under "## A short tour". It is
written to a file in an empty directory and run there with ``python tour.py``
in a fresh interpreter, twice: as a script it starts a ``distributed`` cluster
whose worker processes re-import the main module (the ``__main__`` guard), and a
second run must overwrite what the first one wrote.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
TOUR_TIMEOUT = 240  # seconds for one run of the tour, cluster start included


def code_blocks(heading: str, language: str) -> list[str]:
    """The ``language`` code blocks of the README section under the heading ``heading``."""
    parts = README.split(f"\n{heading}\n", 1)
    assert len(parts) == 2, f"README.md has no heading {heading!r}"
    section = re.split(r"^## ", parts[1], maxsplit=1, flags=re.M)[0]
    blocks = re.findall(rf"^```{language}\n(.*?)^```$", section, re.S | re.M)
    assert blocks, f"no ```{language} block under {heading!r}"
    return blocks


def test_the_test_command_is_what_ci_runs():
    _, test = code_blocks("## Two commands", "bash")
    assert test.splitlines() == ["bash scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test.splitlines()[-1] in ci
    assert (ROOT / "scripts" / "test.sh").is_file()


def test_the_demo_command_is_unchanged():
    demo = code_blocks("## Two commands", "bash")[0]
    assert demo.splitlines() == ["python -m pip install -e . && zarrflow demo"]


@pytest.mark.timeout(2 * TOUR_TIMEOUT + 30)
def test_the_tour_runs_as_a_script_twice(tmp_path):
    tour = code_blocks("## A short tour", "python")[0]
    assert 'if __name__ == "__main__":' in tour
    (tmp_path / "tour.py").write_text(tour, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    outputs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "tour.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=TOUR_TIMEOUT,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    lines = outputs[0].splitlines()
    assert lines[0] == "(400, 500) 100 chunk means, 100 chunk sums, max 999999"
    mean_total = np.arange(1_000_000).reshape(1000, 1000).sum(axis=1).mean()
    assert lines[2] == f"4 partitions, mean total {mean_total}"
    assert lines[-1].endswith(f" {2 * 999_999}")
    for name in ("a", "b", "c", "frame"):
        assert (tmp_path / "data" / f"{name}.zarr" / "zarr.json").is_file()


def test_every_extra_is_listed_with_what_it_brings():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = pyproject["project"]["optional-dependencies"]
    section = README.split("\n## Installing\n", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| ([^|]+) \|", section, re.M))
    assert set(rows) == set(extras)
    for extra, requirements in extras.items():
        if extra != "test":  # the test extra's row sums it up
            first = re.split(r"[\[<>=]", requirements[0])[0]
            assert first.lower() in rows[extra].lower(), (extra, rows[extra])
