"""`python -m worker`: the same entry point as the `roi-worker` script."""

from worker.cli.launch import main

raise SystemExit(main())
