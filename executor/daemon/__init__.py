"""The Corral executor daemon (`corrald serve`): gRPC API over a warm container pool.

Modules, one concern each: `config` (DaemonConfig and its sources), `errors`
(the exception tree and its gRPC status mapping), `auth` (bearer tokens),
`pool` (warm containers: acquire/release/destroy), `sessions` (ids, owners,
expiry, one-snippet-at-a-time), `service` (the RPC handlers), `convert`
(validating runner frames into gRPC messages), `reconcile` (leftovers of dead
daemons), `metrics` (Prometheus text), `logs`, `doctor` (host self-check),
`server` (lifecycle and shutdown), `cli` (serve, doctor), `testing` (a real
daemon for tests).

Design notes (approaches considered and rejected):
- Reusing a container for a second session after "resetting" the runner:
  rejected; a snippet may have left anything behind in /workspace, /tmp or
  the runner's memory. Containers are single-session and destroyed.
- An asyncio reader on the attach socket instead of driver threads: the
  synchronous driver costs one thread per running snippet, which the daemon's
  own thread pool (sized from pool_max) absorbs; one code path for the frame
  protocol is worth more than the saved threads.
- Resizing warm containers (`docker update`) for sessions asking other memory
  or pids limits: tmpfs size cannot be changed after creation, so sessions
  with non-default container limits get a dedicated cold container instead.
- Reconciling by instance label alone: several daemons and test runs share one
  engine; removing every other instance's containers would kill live
  sessions. Reconciliation also checks that the owning process is dead.
"""
