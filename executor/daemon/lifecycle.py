"""Sessions that survive: interrupts, history, checkpoints, fork and recovery.

What the daemon keeps per session, besides its container:

- **History.** Every state change the daemon carried into the container, in
  order: snippets (with the tool results the client gave them, in call order,
  and the verdict and an output digest of the original run), SetVariables and
  uploads. It is bounded (`HISTORY_MAX_BYTES`, `HISTORY_MAX_ENTRIES`); past
  the bound the session still works but can no longer be forked or recovered
  past that point (CannotReplay says so). Entries are immutable and shared, so
  a checkpoint's copy of the history costs one tuple of references.
- **Checkpoints.** The runner holds the state (a stopped fork per checkpoint,
  see proto/frames.md); the daemon maps its own random ids, scoped to the
  session, to the runner's ids and to the history at that moment. An id from
  another session is simply not in the map: NOT_FOUND, like a wrong session id.
- **Run control.** While a snippet runs, `RunControl` can interrupt it: any
  tool call waiting for the client is answered with an InterruptedError, then
  the runner gets an `interrupt` frame and a bounded grace (the daemon's
  `hard_timeout_grace_ms`) to answer with its result (verdict INTERRUPTED,
  state kept). No answer in time: the container is killed and the session is
  lost, recoverable with `recover()`.

Replay (fork, recover) runs the recorded history in a fresh container and
answers each replayed tool call with the recorded result, so no tool is ever
called twice. What replay cannot reproduce, and how the caller learns it
(`ReplayWarning`s in the response):

- code that depends on time, randomness without a seed, object ids, or the
  order of sets of strings (hash randomisation): the output digest differs
  ("output"), or the verdict does ("verdict");
- a replayed snippet that calls tools in another order or another number of
  times than the recording ("tools"; the unmatched call raises inside it);
- snippets that were interrupted, timed out or hit a CPU/memory limit: how
  far they got is unknowable, they are not replayed ("skipped");
- files a snippet wrote are re-created only by re-running it (uploads are
  recorded); checkpoints are not carried into a fork; a checkpoint that
  cannot be re-created during recovery is reported ("checkpoint").
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from executor.daemon.errors import (
    CheckpointNotFound,
    InvalidArgument,
    SandboxCallFailed,
)
from proto import executor_pb2 as pb
from proto.limits import SessionLimits

log = logging.getLogger("corral.daemon.lifecycle")

HISTORY_MAX_BYTES = 16 << 20  # per session: recorded code, tool results, variables, uploads
HISTORY_MAX_ENTRIES = 10_000
MAX_LOST_SESSIONS = (
    64  # lost sessions kept for recover() (x 16 MiB history at most); oldest forgotten first
)
MAX_WARNINGS = 100  # replay warnings returned per fork/recover
MAX_CHECKPOINT_ID = 64  # characters of a checkpoint id accepted from a client
MAX_RUNNER_ID = 128  # characters of a checkpoint id accepted from the runner
CALL_TIMEOUT_S = 10.0
# Verdicts whose partial effects cannot be reproduced: not replayed.
NOT_REPLAYED = frozenset(
    ("INTERRUPTED", "TIMEOUT", "CPU_LIMIT", "MEMORY_LIMIT", "SANDBOX_LOST", "INTERNAL")
)
INTERRUPT_ERROR = {
    "ok": False,
    "error": {"type": "InterruptedError", "message": "the client interrupted the snippet"},
}


# ---------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Entry:
    """One recorded state change. Immutable: snapshots share entries."""

    kind: str  # "execute" | "set_vars" | "upload"
    size: int
    code: str = ""
    tools: tuple[tuple[str, dict[str, Any]], ...] = ()  # (tool name, reply body) in call order
    verdict: str = ""
    output_digest: str = ""
    variables: dict[str, Any] | None = None
    path: str = ""
    data: bytes = b""


def output_digest(stdout: str) -> str:
    return hashlib.blake2b(stdout.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def execute_entry(
    code: str, tools: Sequence[tuple[str, dict[str, Any]]], verdict: str, stdout: str
) -> Entry:
    size = len(code) + sum(len(name) + len(json.dumps(reply)) for name, reply in tools)
    return Entry(
        "execute",
        size,
        code=code,
        tools=tuple(tools),
        verdict=verdict,
        output_digest=output_digest(stdout),
    )


def set_vars_entry(variables: dict[str, Any]) -> Entry:
    return Entry("set_vars", len(json.dumps(variables)), variables=variables)


def upload_entry(path: str, data: bytes) -> Entry:
    return Entry("upload", len(path) + len(data), path=path, data=data)


@dataclass(frozen=True)
class Snapshot:
    """The history at one moment; `complete` is False when entries were dropped."""

    entries: tuple[Entry, ...]
    complete: bool


class History:
    """A session's recorded state changes, bounded in bytes and entries."""

    def __init__(
        self, max_bytes: int = HISTORY_MAX_BYTES, max_entries: int = HISTORY_MAX_ENTRIES
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.entries: list[Entry] = []
        self.bytes = 0
        self.complete = True  # False once an entry did not fit: no replay past that point

    def __len__(self) -> int:
        return len(self.entries)

    def append(self, entry: Entry) -> None:
        if not self.complete:
            return
        if self.bytes + entry.size > self.max_bytes or len(self.entries) >= self.max_entries:
            self.complete = False
            return
        self.entries.append(entry)
        self.bytes += entry.size

    def snapshot(self) -> Snapshot:
        return Snapshot(tuple(self.entries), self.complete)

    def restore(self, snap: Snapshot) -> None:
        self.entries = list(snap.entries)
        self.bytes = sum(e.size for e in snap.entries)
        self.complete = snap.complete

    def has_prefix(self, snap: Snapshot) -> bool:
        """True when `snap` is an earlier point of this same line of history."""
        return _prefix(snap.entries, self.entries)


def _prefix(head: Sequence[Entry], line: Sequence[Entry]) -> bool:
    n = len(head)
    return n <= len(line) and all(a is b for a, b in zip(head, line[:n], strict=True))


def is_prefix(head: Snapshot, line: Snapshot) -> bool:
    """True when `head` is an earlier point of the history `line` (same entries)."""
    return _prefix(head.entries, line.entries)


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------


@dataclass
class Checkpoint:
    id: str  # the daemon's id, given to the client
    runner_id: str  # the runner's id for the same checkpoint
    created_ms: int
    snapshot: Snapshot


def new_checkpoint_id() -> str:
    return "cp_" + secrets.token_urlsafe(12)


def check_checkpoint_id(checkpoint_id: str) -> str:
    if not checkpoint_id or len(checkpoint_id) > MAX_CHECKPOINT_ID:
        raise InvalidArgument(
            f"checkpoint_id must be 1..{MAX_CHECKPOINT_ID} characters, as checkpoint() returned"
        )
    return checkpoint_id


def find_checkpoint(checkpoints: dict[str, Checkpoint], checkpoint_id: str) -> Checkpoint:
    cp = checkpoints.get(check_checkpoint_id(checkpoint_id))
    if cp is None:
        raise CheckpointNotFound(checkpoint_id)
    return cp


def runner_checkpoint_id(answer: dict[str, Any]) -> str:
    """The runner's checkpoint id from its answer (hostile input: checked)."""
    rid = answer.get("checkpoint_id")
    if not isinstance(rid, str) or not 0 < len(rid) <= MAX_RUNNER_ID:
        raise SandboxCallFailed("the runner answered checkpoint without a valid checkpoint_id")
    return rid


def latest_on_line(checkpoints: dict[str, Checkpoint], history: History) -> Checkpoint | None:
    """The newest checkpoint on the current line of history (after rollbacks)."""
    best: Checkpoint | None = None
    for cp in checkpoints.values():
        if history.has_prefix(cp.snapshot) and (
            best is None or len(cp.snapshot.entries) >= len(best.snapshot.entries)
        ):
            best = cp
    return best


def checkpoint_info(cp: Checkpoint) -> pb.CheckpointInfo:
    return pb.CheckpointInfo(
        checkpoint_id=cp.id, created_ms=cp.created_ms, history=len(cp.snapshot.entries)
    )


# ---------------------------------------------------------------------------
# Interrupts
# ---------------------------------------------------------------------------


def running_execute_id(sandbox: Any) -> str:
    """The frame id of the execute now running on `sandbox`.

    The channel numbers its requests `q1, q2, ...` and an execute holds the
    session's lock, so the newest id is the running execute's. A channel that
    names it (`running_execute_id`) is preferred.
    """
    named = getattr(sandbox, "running_execute_id", None)
    if isinstance(named, str) and named:
        return named
    return f"q{getattr(sandbox, '_ids', 0)}"


class RunControl:
    """One running snippet, as far as interrupting it goes."""

    def __init__(
        self,
        sandbox: Any,
        grace_s: float,
        kill: Callable[[], Awaitable[None]],
    ) -> None:
        self.sandbox = sandbox
        self.grace_s = grace_s
        self._kill = kill
        self.task: asyncio.Task[Any] | None = None
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.tool_log: list[tuple[str, dict[str, Any]]] = []
        self.interrupted = False
        self.killed = False  # the runner did not stop within the grace
        self.stopper: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def interrupt(self) -> bool:
        """Ask the snippet to stop; True when one was running. Idempotent (storms are free)."""
        if not self.running:
            return False
        if not self.interrupted:
            self.interrupted = True
            self.stopper = asyncio.get_running_loop().create_task(self._stop())
        return True

    async def _stop(self) -> None:
        from executor.sandbox import driver

        answered = False
        for fut in list(self.pending.values()):
            if not fut.done():
                fut.set_result(dict(INTERRUPT_ERROR))
                answered = True
        if answered:
            # Let the channel write the tool answer before the interrupt frame, so
            # the two frames never interleave on the runner's stdin.
            for _ in range(3):
                await asyncio.sleep(0)
        try:
            if self.running:
                await self.sandbox.send_async(
                    {"type": "interrupt", "id": running_execute_id(self.sandbox)}
                )
        except driver.SandboxError as exc:
            log.debug("interrupt frame not sent", extra={"error": str(exc)[:200]})
        task = self.task
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=self.grace_s)
        if not done:
            self.killed = True
            await self._kill()  # the pending read ends with EOF: SANDBOX_LOST
            await asyncio.wait({task}, timeout=5.0)

    async def stop(self) -> None:
        """Interrupt and wait until the snippet ended (the result, or the kill)."""
        self.interrupt()
        stopper = self.stopper
        if stopper is not None:
            await asyncio.shield(stopper)


async def wait_until_free(session: Any, timeout: float) -> None:
    """Wait (bounded) for an interrupted snippet to finish, so the session is usable at once."""
    control = getattr(session, "run", None)
    if control is None or not control.interrupted or not session.lock.locked():
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while session.lock.locked() and loop.time() < deadline:
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------


def mib(n: int) -> str:
    """8 MiB, 40.0 MiB, 12 KiB, 300 bytes (exact multiples without a decimal)."""
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return (
                f"{n >> shift} {unit}"
                if n % (1 << shift) == 0
                else f"{n / (1 << shift):.1f} {unit}"
            )
    return f"{n} bytes"


def caps(limits: SessionLimits, max_file_bytes: int, max_message_bytes: int) -> pb.Caps:
    return pb.Caps(
        code_bytes=limits.code_bytes,
        file_bytes=max_file_bytes,
        tool_result_bytes=max_file_bytes,
        variables_bytes=max_file_bytes,
        message_bytes=max_message_bytes,
    )


def oversized_tool_result(name: str, size: int, cap: int) -> dict[str, Any]:
    """The tool_result body raised inside the snippet for a result above the cap."""
    return {
        "ok": False,
        "error": {
            "type": "ToolError",
            "message": f"the result of {name[:100]!r} is {mib(size)}; the cap is {mib(cap)} "
            "(config: max_file_bytes); return less, or write it to a file and upload it",
        },
    }


# ---------------------------------------------------------------------------
# Replay
# ---------------------------------------------------------------------------


@dataclass
class ReplayReport:
    replayed: int = 0
    warnings: list[pb.ReplayWarning] = field(default_factory=list)
    runner_ids: dict[str, str] = field(default_factory=dict)  # checkpoint id -> new runner id

    def warn(self, entry: int, kind: str, message: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(pb.ReplayWarning(entry=entry, kind=kind, message=message[:500]))


async def replay(
    sandbox: Any,
    entries: Sequence[Entry],
    limits: SessionLimits,
    grace_ms: int,
    checkpoints: Sequence[Checkpoint] = (),
) -> ReplayReport:
    """Re-run `entries` in a fresh, initialised sandbox; re-create `checkpoints` on the way.

    Raises the driver's SandboxError when the container fails (the caller
    destroys it). Tool calls are answered from the recording only.
    """
    from executor.sandbox import driver

    report = ReplayReport()
    at: dict[int, list[Checkpoint]] = {}
    for cp in checkpoints:
        at.setdefault(len(cp.snapshot.entries), []).append(cp)
    hard_s = (limits.wall_time_ms + grace_ms) / 1000

    async def take_checkpoints(position: int) -> None:
        for cp in at.get(position, ()):
            try:
                answer = await sandbox.request_async({"type": "checkpoint"}, CALL_TIMEOUT_S)
                report.runner_ids[cp.id] = runner_checkpoint_id(answer)
            except (driver.SandboxRequestError, SandboxCallFailed) as exc:
                report.warn(position, "checkpoint", f"checkpoint {cp.id} not re-created: {exc}")

    for i, entry in enumerate(entries):
        await take_checkpoints(i)
        if entry.kind == "set_vars":
            await sandbox.request_async(
                {"type": "set_vars", "variables": entry.variables or {}}, CALL_TIMEOUT_S
            )
        elif entry.kind == "upload":
            data_b64 = base64.b64encode(entry.data).decode("ascii")
            await sandbox.request_async(
                {"type": "write_file", "path": entry.path, "data_b64": data_b64}, CALL_TIMEOUT_S
            )
        elif entry.verdict in NOT_REPLAYED:
            report.warn(
                i,
                "skipped",
                f"snippet {i} ended {entry.verdict} originally; how far it got cannot be "
                "reproduced, so it was not replayed (its partial effects are missing)",
            )
            continue
        else:
            await _replay_snippet(sandbox, i, entry, hard_s, report)
        report.replayed += 1
    await take_checkpoints(len(entries))
    return report


async def _replay_snippet(
    sandbox: Any, index: int, entry: Entry, hard_s: float, report: ReplayReport
) -> None:
    recorded = list(entry.tools)
    used = 0
    diverged = False

    async def on_tool_call(call: dict[str, Any]) -> dict[str, Any]:
        nonlocal used, diverged
        name = call["name"]
        if used < len(recorded) and recorded[used][0] == name:
            used += 1
            return dict(recorded[used - 1][1])
        diverged = True
        return {
            "ok": False,
            "error": {
                "type": "RuntimeError",
                "message": f"replay: tool {name[:100]!r} was not called here in the original "
                "run; tools are never called twice, so this call has no result",
            },
        }

    frame = await sandbox.execute_async(
        entry.code, timeout=hard_s, on_output=lambda _text: None, on_tool_call=on_tool_call
    )
    verdict = str(frame.get("verdict", ""))
    if diverged or used != len(recorded):
        report.warn(
            index,
            "tools",
            f"snippet {index} called tools differently when replayed ({used} of "
            f"{len(recorded)} recorded results used); its state may differ",
        )
    if verdict != entry.verdict:
        report.warn(
            index,
            "verdict",
            f"snippet {index} ended {verdict} when replayed, {entry.verdict} originally "
            "(non-deterministic code: time, randomness without a seed, ids)",
        )
    elif output_digest(str(frame.get("stdout") or "")) != entry.output_digest:
        report.warn(
            index,
            "output",
            f"snippet {index} printed something else when replayed (time, randomness "
            "without a seed, ids or set order); values it computed may differ",
        )


def now_ms() -> int:
    return int(time.time() * 1000)
