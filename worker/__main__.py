from worker.launch import main

raise SystemExit(main())
