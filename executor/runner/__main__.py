"""`python3 -I -m executor.runner [--raw] [--workspace DIR]`: the container's command."""

from executor.runner.main import main

raise SystemExit(main())
