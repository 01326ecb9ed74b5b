from kubemeter.cli import main

raise SystemExit(main())
