"""``python -m UniversalSegLib`` runs the ``universalseg`` command."""

from UniversalSegLib.cli.main import main

raise SystemExit(main())
