"""The Corral executor daemon (`corrald serve`): gRPC API over a warm container pool.

Modules, one concern each: `config` (DaemonConfig and its sources), `errors`
(the exception tree and its gRPC status mapping), `auth` (bearer tokens),
`pool` (warm containers: acquire/release/destroy), `sessions` (ids, owners,
expiry, one snippet at a time), `service` (the RPC handlers), `channel` (the
container channel on the event loop), `convert` (runner frames into gRPC
messages, validated), `reconcile` (leftovers of dead daemons), `metrics`
(Prometheus text), `logs`, `doctor` (host self-check), `server` (lifecycle
and shutdown), `cli` (serve, doctor), `testing` (a real daemon for tests).

Design notes (approaches considered and rejected):
- Reusing a container for a second session after "resetting" the runner:
  rejected; a snippet may have left anything behind in /workspace, /tmp or
  the runner's memory. Containers are single-session and destroyed.
- Driving the synchronous driver from a thread per call: it worked, but each
  snippet paid two extra cross-thread wake-ups (p50 ~3x the raw channel on a
  busy 2-core host). `channel.AsyncSandbox` is an asyncio transport on the
  same sans-IO core as the driver (`executor.sandbox.protocol`), so only the
  socket reads and writes differ. Container start/destroy (Docker API calls)
  still run in threads.
- `AsyncSandbox` as a subclass of the blocking driver, reaching into its
  buffers and state: rejected after the two drifted (the async path lost the
  tool-time budget; error messages differed). Both now hold a
  `ChannelProtocol` and differ only in how bytes move.
- Resizing warm containers (`docker update`) for sessions asking other memory
  or pids limits: tmpfs size cannot be changed after creation, so sessions
  with non-default container limits get a dedicated cold container instead.
- Reconciling by instance label alone: several daemons and test runs share one
  engine; removing every other instance's containers would kill live
  sessions. Reconciliation also checks that the owning process is dead.
"""
