"""Runner start-up: take the channel off the standard fds, tune the process, serve.

Start-up order matters: the channel moves to private descriptors before
anything can print; the process splits into the supervisor (which tini
started and which outlives rollbacks, see supervisor.py) and the first runner
before any thread exists; the runner blocks the checkpoint wake-up signal
(SIGUSR1) before starting threads, so every thread inherits the block; the C heap is limited to one malloc arena and threads get
small stacks, because RLIMIT_AS counts reserved address space and each extra
glibc arena reserves 64+ MiB that nothing uses; the interpreter is imported
before `ready` so a warm container answers its first snippet at full speed.

Standard library only (plus the interpreter): this module runs inside the
sandbox image.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

THREAD_STACK_BYTES = 512 << 10
M_ARENA_MAX = -8  # glibc mallopt parameter number (malloc.h)


def _limit_malloc_arenas() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)
    except (ImportError, OSError, AttributeError):
        pass  # not glibc: arenas are not a concern there


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -I -m executor.runner", description=__doc__)
    parser.add_argument(
        "--raw",
        action="store_true",
        help="run snippets with plain CPython exec (operator probes of the container layer only)",
    )
    parser.add_argument(
        "--workspace", default="/workspace", help="directory for write_file/read_file"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from executor.runner.channel import Channel, take_standard_fds, watch_hangup

    read_fd, write_fd = take_standard_fds()
    sys.stdout = sys.stderr  # fd 1 now is a copy of fd 2 as well
    from executor.runner import supervisor
    from executor.runner.checkpoints import WAKE_SIGNAL, ProcessContext

    supervisor_pid, status_w = supervisor.start(read_fd, write_fd)
    signal.pthread_sigmask(signal.SIG_BLOCK, {WAKE_SIGNAL})
    process = ProcessContext.create(supervisor_pid, status_w, read_fd)
    _limit_malloc_arenas()
    threading.stack_size(THREAD_STACK_BYTES)
    channel = Channel(read_fd, write_fd)
    watch_hangup(read_fd)
    from executor.runner.server import Runner

    if not args.raw:
        import executor.interpreter  # noqa: F401 - loaded before `ready`: warm containers
    runner = Runner(channel, raw=args.raw, workspace=args.workspace, process=process)
    try:
        runner.serve()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon closed its reading end: it is gone
    sys.stderr.flush()
    # Exit at once: no atexit handlers or thread joins that a snippet could hold up.
    os._exit(0)
