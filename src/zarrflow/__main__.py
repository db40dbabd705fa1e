"""``python -m zarrflow`` runs the command-line interface."""

from zarrflow.cli import main

raise SystemExit(main())
