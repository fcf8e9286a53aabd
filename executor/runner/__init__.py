"""The in-container runner: one persistent process per sandbox, driven by frames.

It reads length-prefixed frames (`frames.py`, schema in proto/frames.md) from
stdin and writes frames to stdout, running each snippet in the restricted
interpreter (or, for operator probes only, raw CPython). Modules:

- `main`: start-up (private channel fds, malloc/thread tuning), `python3 -I -m executor.runner`.
- `channel`: frame I/O on private fds, signal-safe writes, bounded reads.
- `server`: the request loop and one handler per frame type.
- `output`: batched, capped streaming of printed output.
- `tools`: tool stubs that call back to the client.
- `workspace`: confined file transfer.
- `rlimits`: the one place turning limits into rlimits.
- `raw`: plain-exec mode for testing the container layer alone.

Design notes (approaches considered and rejected):
- A per-snippet RLIMIT_CPU hard limit: an unprivileged process cannot raise a
  hard limit again, so the second snippet would inherit the first one's
  deadline. Only the soft limit moves; the daemon's hard timeout is the backstop.
- Reading frames through a buffered file object: an exception raised by a
  signal handler inside a buffered read can drop bytes already taken from the
  pipe. The runner keeps its own buffer and holds the interrupting signals
  while it talks to the channel.
- A fresh output thread per snippet: thread start costs and pid-limit churn; one
  flusher thread lives as long as the runner.

Standard library only (plus the interpreter): copied into the sandbox image.
"""
