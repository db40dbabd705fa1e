"""environment.yml asks for what pyproject.toml asks for: the same packages, the same bounds.

The mapping rules (also written at the top of environment.yml):

* ``python`` carries ``requires-python``;
* the conda side holds the runtime dependencies, the ``test`` extra and the
  ``notebooks`` extra, each with pyproject.toml's version bound;
* a pip requirement with extras (``dask[array]``) is the conda package of the same
  name, plus the packages the extra installs where conda-forge splits them out
  (:data:`EXTRA_PACKAGES`);
* a package conda-forge does not carry sits under ``pip:`` with its pip
  requirement (:data:`PIP_ONLY`); ``-e .`` installs zarrflow itself.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
ENVIRONMENT = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
EXTRAS_IN_ENVIRONMENT = ("test", "notebooks")

#: (pip package, extra) -> conda-forge packages that extra brings beside the package itself
EXTRA_PACKAGES = {("moto", "server"): {"flask": "", "flask-cors": ""}}
#: packages installed from PyPI in environment.yml (not on conda-forge): none today
PIP_ONLY: set[str] = set()


def _bound(specifier: str) -> str:
    """A version bound in one spelling: ``>=1.2,<2`` with no spaces, clauses sorted."""
    return ",".join(sorted(part.strip() for part in specifier.split(",") if part.strip()))


def _add(wanted: dict[str, str], name: str, bound: str, source: str) -> None:
    if name in wanted and wanted[name] != bound:
        pytest.fail(f"{name}: pyproject.toml asks for {wanted[name]!r} and {bound!r} ({source})")
    wanted[name] = bound


def expected() -> tuple[dict[str, str], dict[str, str]]:
    """``(conda packages, pip packages)`` environment.yml must list: name -> version bound."""
    requirements = list(PYPROJECT["dependencies"])
    for extra in EXTRAS_IN_ENVIRONMENT:
        requirements += PYPROJECT["optional-dependencies"][extra]
    conda: dict[str, str] = {"python": _bound(PYPROJECT["requires-python"])}
    pip: dict[str, str] = {}
    for text in requirements:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        side = pip if name in PIP_ONLY else conda
        _add(side, name, _bound(str(req.specifier)), text)
        for extra in req.extras:
            for package, bound in EXTRA_PACKAGES.get((name, extra), {}).items():
                _add(conda, package, bound, text)
    return conda, pip


def listed() -> tuple[dict[str, str], dict[str, str], list[str]]:
    """``(conda packages, pip packages, other pip lines)`` of environment.yml."""
    conda: dict[str, str] = {}
    pip: dict[str, str] = {}
    other: list[str] = []
    for entry in ENVIRONMENT["dependencies"]:
        if isinstance(entry, dict):
            for line in entry["pip"]:
                if line.startswith("-"):
                    other.append(line)
                else:
                    req = Requirement(line)
                    pip[canonicalize_name(req.name)] = _bound(str(req.specifier))
            continue
        found = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", entry)
        assert found, f"environment.yml: cannot read {entry!r}"
        name, bound = found.groups()
        assert name not in conda, f"environment.yml lists {name} twice"
        conda[canonicalize_name(name)] = _bound(bound)
    conda.pop("pip", None)  # the installer of the pip: section
    return conda, pip, other


def test_environment_yml_lists_what_pyproject_toml_asks_for():
    want_conda, want_pip = expected()
    have_conda, have_pip, _ = listed()
    assert have_conda == want_conda
    assert have_pip == want_pip


def test_environment_yml_installs_zarrflow_itself_from_conda_forge():
    assert ENVIRONMENT["channels"] == ["conda-forge"]
    assert listed()[2] == ["-e ."]
