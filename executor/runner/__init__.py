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
- `reader`: reads the channel while a snippet runs (interrupts, tool results).
- `checkpoints`: checkpoint/rollback as stopped copy-on-write processes.
- `supervisor`: the process tini starts; it outlives rollbacks.

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
- Checkpoints by serialising the namespace (pickle/dill): slow for 100 MB of
  state, and modules, classes defined in snippets, open generators and C
  objects do not serialise faithfully. A forked, stopped copy holds the whole
  process image at the cost of the pages written afterwards.
- Checkpoint copies stopped with SIGSTOP: a stopped process cannot notice that
  the session ended; blocked in `sigtimedwait` it is not scheduled either, yet
  wakes once a second to check for the channel's hang-up and exits then.
- A rollback that keeps the checkpoint process frozen and forks the new runner
  from it: the runners would form an ever-deeper chain of parents. The woken
  checkpoint becomes the runner and forks its own replacement instead.
- Workspace copies in the /tmp tmpfs: /tmp is 16 MiB, smaller than the
  workspace; the copy lives in the checkpoint process's memory instead (also
  RAM, as tmpfs is), is charged to the checkpoint's memory reserve, and
  vanishes with the process when the checkpoint is dropped.

Standard library only (plus the interpreter): copied into the sandbox image.
"""
