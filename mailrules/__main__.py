from mailrules.cli import main

raise SystemExit(main())
