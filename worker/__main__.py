from worker.cli.launch import main

raise SystemExit(main())
