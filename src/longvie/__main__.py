from longvie.cli import main

raise SystemExit(main())
