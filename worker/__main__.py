"""`python -m roi_worker` (or `worker`): the same entry point as the `roi-worker` script."""

from .cli.launch import main

raise SystemExit(main())
