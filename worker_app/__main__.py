from worker_app.cli import main

raise SystemExit(main())
