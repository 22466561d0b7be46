from ocvis.cli import main

raise SystemExit(main())
