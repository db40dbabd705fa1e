"""The ``zarrflow`` console script: argument parsing (:mod:`.app`) and its commands.

``main`` is the entry point named in ``pyproject.toml``; :mod:`.commands` holds
what each sub-command does and :mod:`.quickbench` the quick benchmark.
"""

from __future__ import annotations

from zarrflow.cli.app import main

__all__ = ["main"]
