"""Load tools for the daemon: `corrald bench load` (see executor.bench.load)."""
