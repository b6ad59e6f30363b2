"""``python -m flowkit``: the same command line as the ``flowkit`` console script."""

from flowkit.cli import main

raise SystemExit(main())
