"""Checkpoints and rollback of a whole session: one stopped copy-on-write process each.

`checkpoint` forks the working runner. The child is the checkpoint: it stops
at once (blocked in `sigtimedwait`, never scheduled) holding the complete
interpreter state as it was (variables, functions, classes, imported modules,
numpy arrays: the whole process image) plus a copy of the workspace files,
read just before the fork. The parent answers and carries on as the session.

`rollback(cp)` hands the session to that child: the working runner sends it
SIGUSR1 and writes a handover (the request id to answer, the channel's bytes
already read but not yet handled, the checkpoint table) on a pipe every
runner process inherited, reports the child's pid to the supervisor, and
exits. The woken child puts the workspace back, restarts its helper threads
and answers `ack`; from then on it is the working runner. Right after the
ack it forks once more: that child takes its place as the stopped
checkpoint (nothing of the interpreter ran in between), so the checkpoint
stays usable for more rollbacks and the caller does not wait for the fork. The process tini started (the
supervisor, executor/runner/supervisor.py) stays alive throughout.

Memory cost (why a checkpoint is cheap, and what it may cost at worst).
fork() copies no memory: parent and child share every page, marked
copy-on-write; a page is duplicated only when one side writes to it, and only
that page (4 KiB). The stopped child never writes, so a checkpoint costs
(a) its page tables, about 2 MiB per GiB mapped, plus a few kernel pages,
(b) the workspace copy it holds, and (c) every page the session writes after
the checkpoint, which then exists twice. For numpy state, (c) is the pages
of the arrays the session modifies (a 100 MB array that is only read costs
nothing; one rewritten in place costs 100 MB); CPython objects that are
merely touched also get copied, since reference counts live in the objects.
Measured by benchmarks/checkpoints.py (runc, a session of 149 MiB holding a
100 MB numpy array): 2.2 MiB per idle checkpoint; +97 MiB once the session
rewrote the array in place with checkpoints held (one more copy of its pages).
Because (c) can reach everything the session held, each checkpoint reserves
its worst case: its `charge` is the runner's anonymous resident memory
(RssAnon) at fork, plus the workspace copy, plus page tables. The working
runner's address-space limit (RLIMIT_AS, see rlimits.py) is lowered by the
sum of the charges of the checkpoints held, so the session plus all
checkpoints can never exceed the container's memory (no OOM kill: a snippet
that grows into the reserve gets MemoryError, verdict MEMORY_LIMIT), and a
checkpoint whose reserve would not fit is refused with an error frame.
Each checkpoint is one task in the pids cgroup; a checkpoint that would leave
fewer than `PIDS_RESERVE` free tasks is refused as well, as is one past
`max_checkpoints`. Dropping a checkpoint kills its process and frees both.

Standard library only: this module runs inside the sandbox image.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from executor.runner import supervisor

MiB = 1 << 20
WAKE_SIGNAL = signal.SIGUSR1
FROZEN_CHECK_S = 1.0  # a stopped checkpoint checks this often whether the session still exists
HANDOVER_TIMEOUT_S = 5.0
HANDOVER_MAGIC = b"CRLH"
HANDOVER_HEADER = struct.Struct("<4sI")
PIDS_RESERVE = 3  # tasks kept free: a rollback's transient copy, the snippet reader, a watchdog
AS_MARGIN_BYTES = 32 * MiB  # address space the runner keeps beyond its current size
PAGE_TABLE_RATIO = 512  # one 8-byte entry per 4 KiB page


class CheckpointError(Exception):
    """A checkpoint request was refused; the message says why and how to fix it."""


@dataclass
class Checkpoint:
    checkpoint_id: str
    pid: int
    created_ms: int
    charge_bytes: int


@dataclass
class ProcessContext:
    """Descriptors shared by every runner process of the container."""

    supervisor_pid: int
    status_w: int  # write end of the supervisor's status pipe
    handover_r: int
    handover_w: int
    read_fd: int  # the channel's read end (hang-up means the daemon is gone)

    @classmethod
    def create(cls, supervisor_pid: int, status_w: int, read_fd: int) -> ProcessContext:
        r, w = os.pipe()
        for fd in (r, w):
            os.set_inheritable(fd, False)
            os.set_blocking(fd, False)
        return cls(supervisor_pid, status_w, r, w, read_fd)


# The working runner's side of a rollback and of waking up: provided by the Runner.
ExportSession = Callable[[], dict[str, Any]]
BecomeActive = Callable[[str, dict[str, Any]], None]  # (request id, session handover)


class Checkpoints:
    """The checkpoint table of the working runner and the fork/handover mechanics."""

    def __init__(self, ctx: ProcessContext, workspace_root: str) -> None:
        self.ctx = ctx
        self.workspace_root = workspace_root
        self.table: dict[str, Checkpoint] = {}
        self._unreaped: set[int] = set()  # killed checkpoints, our children, not yet reaped

    # -- accounting ---------------------------------------------------------

    def reserved_bytes(self) -> int:
        return sum(cp.charge_bytes for cp in self.table.values())

    def listing(self) -> list[dict[str, Any]]:
        self.reap()
        return [
            {"checkpoint_id": cp.checkpoint_id, "created_ms": cp.created_ms}
            for cp in sorted(self.table.values(), key=lambda c: c.created_ms)
        ]

    def _check_room(self, max_checkpoints: int, pids: int) -> None:
        self.reap()
        if len(self.table) >= max_checkpoints:
            raise CheckpointError(
                f"the session holds {len(self.table)} checkpoints, its max_checkpoints limit: "
                "drop one with drop_checkpoint, or open the session with a higher max_checkpoints"
            )
        if pids > 0:
            # The container's init (tini) and the supervisor, this runner's threads, checkpoints.
            tasks = 2 + _own_tasks() + len(self.table) + len(self._unreaped)
            if tasks + 1 + PIDS_RESERVE > pids:
                raise CheckpointError(
                    f"a checkpoint is a process and the container would exceed its pids limit "
                    f"({tasks} tasks in use, {PIDS_RESERVE} kept free, limit {pids}): drop a "
                    "checkpoint, or open the session with a higher pids limit"
                )

    # -- checkpoint -----------------------------------------------------------

    def take(
        self,
        *,
        max_checkpoints: int,
        pids: int,
        address_space: int,
        set_address_space: Callable[[int], None],
        become_active: BecomeActive,
    ) -> Checkpoint | None:
        """Fork a checkpoint. Returns it in the working runner. In the checkpoint
        process this returns None only after a rollback made it the working
        runner (`become_active` has run then)."""
        self._check_room(max_checkpoints, pids)
        files = snapshot_workspace(self.workspace_root)
        files_bytes = sum(len(data) for _, _, _, data in files)
        rss_anon, vm_size = _memory()
        charge = rss_anon + files_bytes + vm_size // PAGE_TABLE_RATIO
        reserved = self.reserved_bytes() + charge
        if address_space > 0 and address_space - reserved < vm_size + AS_MARGIN_BYTES:
            raise CheckpointError(
                f"a checkpoint reserves the memory the session holds now ({charge / MiB:.1f} MiB: "
                f"what it costs if every page is rewritten) and the {len(self.table)} held already "
                f"reserve {self.reserved_bytes() / MiB:.1f} MiB: together they would leave the "
                f"session less than it uses ({vm_size / MiB:.1f} MiB of address space) within "
                "memory_bytes. Drop a checkpoint, free memory in the session, or open it with a "
                "higher memory_bytes"
            )
        cp = Checkpoint(secrets.token_hex(8), 0, int(time.time() * 1000), charge)
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {WAKE_SIGNAL})
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            raise CheckpointError(
                f"cannot take a checkpoint: fork failed ({exc.strerror}); the container is out "
                "of processes or memory: drop a checkpoint or raise pids/memory_bytes"
            ) from None
        if pid == 0:
            self._checkpoint_process(cp.checkpoint_id, files, set_address_space, become_active)
            return None
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        del files
        cp.pid = pid
        self.table[cp.checkpoint_id] = cp
        if address_space > 0:
            set_address_space(address_space - self.reserved_bytes())
        return cp

    # -- the stopped checkpoint ------------------------------------------------

    def _checkpoint_process(
        self,
        checkpoint_id: str,
        files: list[Entry],
        set_address_space: Callable[[int], None],
        become_active: BecomeActive,
    ) -> None:
        """The checkpoint's life: stopped until a rollback, then the working runner.

        On a rollback this process puts the workspace back and answers first;
        then it forks its replacement (the new stopped checkpoint, with the
        interpreter state untouched since nothing ran yet: what the woken
        process changed is replaced on the replacement's own wake-up), so the
        caller does not wait for that fork. Returns as the working runner.
        """
        while True:
            handover = self._stopped(checkpoint_id)
            self.table = {c["checkpoint_id"]: Checkpoint(**c) for c in handover["table"]}
            self._unreaped = set()
            restore_workspace(self.workspace_root, files)
            become_active(handover["rid"], handover["session"])
            try:
                pid = os.fork()
            except OSError:
                pid = -1  # no replacement: this rollback used the checkpoint up
            if pid == 0:
                continue  # the replacement: stopped again, with the same state and files
            if pid > 0:
                self.table[checkpoint_id].pid = pid
            else:
                self.table.pop(checkpoint_id, None)
            address_space = int(handover.get("address_space", 0))
            if address_space > 0:
                set_address_space(address_space - self.reserved_bytes())
            return

    def _stopped(self, checkpoint_id: str) -> dict[str, Any]:
        """Wait (never scheduled meanwhile) for a rollback to this checkpoint; its handover."""
        while True:
            info = signal.sigtimedwait({WAKE_SIGNAL}, FROZEN_CHECK_S)
            if info is None:
                if self._orphaned():
                    os._exit(0)
                continue
            handover = _read_handover(self.ctx.handover_r)
            if handover is not None and handover.get("target") == checkpoint_id:
                return handover
            # a stray signal, or garbage: keep waiting

    def _orphaned(self) -> bool:
        """True when the daemon closed the channel or the supervisor is gone."""
        poller = select.poll()
        poller.register(self.ctx.read_fd, 0)
        if any(ev & (select.POLLHUP | select.POLLERR) for _, ev in poller.poll(0)):
            return True
        try:
            os.kill(self.ctx.supervisor_pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        return False

    # -- rollback and drop (working runner) --------------------------------------

    def rollback(
        self, checkpoint_id: str, rid: str, session: dict[str, Any], address_space: int
    ) -> None:
        """Hand the session to the checkpoint and exit; returns only on failure (raises)."""
        cp = self._get(checkpoint_id)
        handover = {
            "target": checkpoint_id,
            "rid": rid,
            "table": [asdict(c) for c in self.table.values()],
            "session": session,
            "address_space": address_space,
        }
        body = json.dumps(handover, separators=(",", ":")).encode("utf-8")
        message = HANDOVER_HEADER.pack(HANDOVER_MAGIC, len(body)) + body
        try:
            if not supervisor.alive(cp.pid):
                raise ProcessLookupError
            os.kill(cp.pid, WAKE_SIGNAL)
        except ProcessLookupError:
            self._forget(cp)
            raise CheckpointError(
                f"checkpoint {checkpoint_id!r} is gone (its process was killed) and was dropped; "
                "the session is unchanged: take a new checkpoint"
            ) from None
        if not _write_all(self.ctx.handover_w, message, HANDOVER_TIMEOUT_S):
            self._forget(cp)
            _drain(self.ctx.handover_r)
            raise CheckpointError(
                f"checkpoint {checkpoint_id!r} did not answer the rollback within "
                f"{HANDOVER_TIMEOUT_S:g} s and was dropped; the session is unchanged"
            )
        # Handed over: the checkpoint now reads the channel. Leave without a trace.
        supervisor.report_active(self.ctx.status_w, cp.pid)
        os._exit(0)

    def drop(self, checkpoint_id: str) -> None:
        self._forget(self._get(checkpoint_id))

    def drop_all(self) -> None:
        for cp in list(self.table.values()):
            self._forget(cp)

    def _get(self, checkpoint_id: str) -> Checkpoint:
        cp = self.table.get(checkpoint_id)
        if cp is None:
            raise CheckpointError(
                f"unknown checkpoint id {checkpoint_id!r}: list_checkpoints shows the ones held"
            )
        return cp

    def _forget(self, cp: Checkpoint) -> None:
        """Kill the checkpoint's process. Its memory is freed as it exits; it is
        reaped later (the caller does not wait for the exit to tear down its
        mappings), by us if it is our child, else by the supervisor."""
        self.table.pop(cp.checkpoint_id, None)
        try:
            os.kill(cp.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self._unreaped.add(cp.pid)
        self.reap()

    def reap(self) -> None:
        """Collect killed checkpoints that have exited (never blocks)."""
        for pid in list(self._unreaped):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid  # a child of an earlier runner: the supervisor reaps it
            if done:
                self._unreaped.discard(pid)


# -- workspace copies ---------------------------------------------------------

Entry = tuple[str, str, int, bytes]  # (kind "d"/"f"/"l", relative path, mode, data or link target)


def snapshot_workspace(root: str) -> list[Entry]:
    """Every directory, regular file and symlink under `root`, parents first."""
    out: list[Entry] = []

    def walk(rel: str) -> None:
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            path = f"{rel}/{e.name}" if rel else e.name
            st = e.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                out.append(("l", path, 0, os.readlink(e.path).encode("utf-8", "surrogateescape")))
            elif stat.S_ISDIR(st.st_mode):
                out.append(("d", path, stat.S_IMODE(st.st_mode), b""))
                walk(path)
            elif stat.S_ISREG(st.st_mode):
                fd = os.open(e.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    chunks = []
                    while chunk := os.read(fd, 1 << 20):
                        chunks.append(chunk)
                finally:
                    os.close(fd)
                out.append(("f", path, stat.S_IMODE(st.st_mode), b"".join(chunks)))
            # sockets, fifos, devices: not part of a checkpoint

    try:
        walk("")
    except OSError as exc:
        raise CheckpointError(f"cannot copy the workspace for the checkpoint: {exc}") from None
    except MemoryError:
        raise CheckpointError(
            "the workspace does not fit in the session's memory for the checkpoint's copy: "
            "delete files from the workspace, drop checkpoints, or raise memory_bytes"
        ) from None
    return out


def restore_workspace(root: str, entries: list[Entry]) -> None:
    """Make `root` hold exactly `entries` (symlinks are never followed)."""
    with os.scandir(root) as it:
        for e in list(it):
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path, ignore_errors=True)
            else:
                try:
                    os.unlink(e.path)
                except OSError:
                    pass
    for kind, rel, mode, data in entries:
        path = os.path.join(root, rel)
        if kind == "d":
            os.mkdir(path, mode)
        elif kind == "l":
            os.symlink(data.decode("utf-8", "surrogateescape"), path)
        else:
            fd = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode
            )
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)


# -- helpers -----------------------------------------------------------------


def _own_tasks() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _memory() -> tuple[int, int]:
    """(anonymous resident bytes, address-space bytes) of this process."""
    fields: dict[str, int] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("RssAnon", "VmRSS", "VmSize"):
                    fields[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return fields.get("RssAnon", fields.get("VmRSS", 0)), fields.get("VmSize", 0)


def _write_all(fd: int, data: bytes, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    view = memoryview(data)
    while view:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        _, ready, _ = select.select([], [fd], [], remaining)
        if not ready:
            continue
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            continue
    return True


def _read_exact(fd: int, n: int, deadline: float) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        try:
            chunk = os.read(fd, n - len(buf))
        except BlockingIOError:
            continue
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _read_handover(fd: int) -> dict[str, Any] | None:
    deadline = time.monotonic() + HANDOVER_TIMEOUT_S
    header = _read_exact(fd, HANDOVER_HEADER.size, deadline)
    if header is None:
        return None
    magic, size = HANDOVER_HEADER.unpack(header)
    if magic != HANDOVER_MAGIC:
        _drain(fd)
        return None
    body = _read_exact(fd, size, deadline)
    if body is None:
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 1 << 16):
            pass
    except (BlockingIOError, OSError):
        pass
