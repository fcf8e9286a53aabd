"""The process the container's init starts: it outlives every rollback.

Docker's init (tini) exits when its direct child exits, taking the whole
container with it. A rollback replaces the working runner by another process
(the checkpoint's copy, executor/runner/checkpoints.py), so the working runner
must not be tini's child. The process tini starts forks the first runner
and then only supervises:

- it is a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so runners and
  checkpoint copies orphaned by a rollback become its children and it reaps
  them (tini would too; here the supervisor also learns of their end);
- it tracks which process is the working runner: a runner that hands over on
  rollback first writes the new runner's pid to the supervisor's status pipe;
- it exits when the working runner exits (with its status: `shutdown` and
  end of stdin give 0) or when the daemon closes stdin (the channel's hang-up),
  and tini's exit then ends every process of the container, checkpoints
  included (the kernel kills a PID namespace whose init exits). Outside a
  container, a stopped checkpoint ends itself on the same hang-up.

It never reads or writes the channel (it keeps only the read end, to see the
hang-up) and imports nothing beyond the standard library, so it costs a few
MiB of memory, shared copy-on-write with the runners, and one pid.

Standard library only: this module runs inside the sandbox image.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import struct

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
PID = struct.Struct("<i")
CHECK_S = 1.0  # how often to check the working runner when no event arrives


def start(read_fd: int, write_fd: int) -> tuple[int, int]:
    """Fork the first runner. Returns (supervisor pid, status pipe write end) in
    the runner; in the supervisor it never returns. Call before any thread starts."""
    status_r, status_w = os.pipe()
    os.set_inheritable(status_r, False)
    os.set_inheritable(status_w, False)
    supervisor = os.getpid()
    _set_subreaper()
    pid = os.fork()
    if pid == 0:
        os.close(status_r)
        return supervisor, status_w
    os.close(status_w)
    os.close(write_fd)
    try:
        code = supervise(read_fd, status_r, pid)
    except BaseException:  # never fall back into the runner's code
        code = 70
    os._exit(code)


def report_active(status_w: int, pid: int) -> None:
    """Tell the supervisor that `pid` is the working runner from now on."""
    os.write(status_w, PID.pack(pid))


def _set_subreaper() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # then orphans go to init, and the periodic check below finds the runner's end


def supervise(read_fd: int, status_r: int, runner: int) -> int:
    """Wait until the working runner ends or stdin hangs up; return the exit code."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    poller = select.poll()
    poller.register(read_fd, 0)  # hang-up only: never take a byte of a frame
    poller.register(status_r, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    active = runner
    pending = b""
    while True:
        try:
            events = poller.poll(int(CHECK_S * 1000))
        except InterruptedError:
            continue
        for fd, ev in events:
            if fd == read_fd and ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                return 0
            if fd == wake_r:
                os.read(wake_r, 4096)
        active, pending = _read_status(status_r, active, pending)
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            # A handing-over runner writes its successor's pid before it exits:
            # read the pipe again before deciding that the working runner ended.
            active, pending = _read_status(status_r, active, pending)
            if pid == active:
                code = os.waitstatus_to_exitcode(status)
                return code if code >= 0 else 128 - code
        if not events and not alive(active):
            active, pending = _read_status(status_r, active, pending)
            if not alive(active):
                return 1


def _read_status(fd: int, active: int, pending: bytes) -> tuple[int, bytes]:
    while True:
        ready, _, _ = select.select([fd], [], [], 0)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        pending += chunk
    while len(pending) >= PID.size:
        (active,) = PID.unpack_from(pending)
        pending = pending[PID.size :]
    return active, pending


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie or a vanished pid is not alive)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X", b"x")
