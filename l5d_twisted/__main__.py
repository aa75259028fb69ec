from l5d_twisted.cli import main

raise SystemExit(main())
