"""Run snippets against a daemon and judge every outcome.

After each snippet: no canary in any output, no escape marker printed, the
host canaries untouched, the daemon healthy (health service SERVING and, when
we started it, its process alive), a control session still answering within
a bound, and no leaked container (managed containers of this daemon vs. what
its stats say it holds).

Statuses:
- "pass": safe, and for corpus entries the verdict is one of `expect`;
- "mismatch" (warning): safe, but a corpus entry's verdict is not in `expect`;
- "fail": an escape (marker or canary), host tripwire, daemon crash, hang,
  control session failure, leaked container, or an INTERNAL verdict.
"""

from __future__ import annotations

import builtins
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from executor.fuzz.canaries import Canaries
from executor.fuzz.corpus import MARKER
from executor.fuzz.generator import Snippet
from executor.fuzz.target import RunOutcome, Session, Target, TargetError
from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED

log = logging.getLogger("corral.fuzz")

# Session limits for fuzz sessions unless an entry asks for others: short
# timeouts keep a campaign of thousands of snippets in minutes.
FUZZ_LIMITS: dict[str, int] = {"wall_time_ms": 3000, "cpu_time_ms": 3000}
# A snippet that rebinds one of these names (e.g. `print = lambda *a: None`)
# could hide the marker of a later snippet in the same session: such a session
# is retired at once.
SHADOWABLE = frozenset(dir(builtins))
CONTROL_CODE = "40 + 2"
CONTROL_EXPECT = "42"


@dataclass
class CampaignConfig:
    seed: int = 0
    count: int = 200  # generated snippets (the corpus always runs first)
    budget_s: float = 600.0  # wall-clock budget for the whole run
    session_reuse: int = 25  # snippets per session before a fresh one is opened
    hard_grace_s: float = 2.0  # the daemon's hard-timeout grace (wall + grace: container killed)
    hang_slack_s: float = 30.0  # extra client-side wait before a run counts as a hang
    control_timeout_s: float = 10.0  # the control session must answer within this
    leak_settle_s: float = 20.0  # containers being destroyed get this long to disappear
    open_attempts: int = (
        3  # OpenSession retries on RESOURCE_EXHAUSTED / UNAVAILABLE (pool refilling)
    )
    check_containers: bool = True


@dataclass
class SnippetResult:
    id: str
    cls: str
    origin: str
    status: str  # pass | mismatch | fail
    verdict: str
    expect: list[str]
    problems: list[str]
    wall_s: float
    session_lost: bool
    code: str
    source: str
    mutations: list[str] = field(default_factory=list)
    rpc: str = ""
    output_excerpt: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class CampaignResult:
    results: list[SnippetResult]
    started: float
    finished: float
    budget_exhausted: bool
    final_problems: list[str]  # problems found after the run (leaked containers at the end...)
    daemon: dict[str, Any]

    @property
    def failures(self) -> list[SnippetResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def mismatches(self) -> list[SnippetResult]:
        return [r for r in self.results if r.status == "mismatch"]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.final_problems


class ContainerCounter:
    """Counts this daemon's managed containers through the Docker API."""

    def __init__(self, instance_id: str, client: Any = None) -> None:
        import docker

        self.client = client or docker.from_env()
        self.instance_id = instance_id

    def count(self) -> int:
        labels = [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={self.instance_id}"]
        # The low-level call: containers.list() inspects each one and races with removal.
        return len(self.client.api.containers(all=True, filters={"label": labels}))


def _excerpt(out: RunOutcome, limit: int = 600) -> str:
    text = out.stdout or out.streamed
    parts = [text[:limit]]
    if out.error:
        parts.append(f"error: {out.error[:limit]}")
    if out.value:
        parts.append(f"value: {out.value[:200]}")
    return "\n".join(p for p in parts if p)


class Campaign:
    def __init__(
        self,
        target: Target,
        canaries: Canaries,
        config: CampaignConfig,
        *,
        daemon_alive: Callable[[], bool] | None = None,
        progress: Callable[[SnippetResult], None] | None = None,
    ) -> None:
        self.target = target
        self.canaries = canaries
        self.config = config
        self.daemon_alive = daemon_alive
        self.progress = progress
        self._sessions: dict[tuple[Any, ...], tuple[Session, int]] = {}
        self._control: Session | None = None
        self.instance_id = ""
        self.counter: ContainerCounter | None = None
        self._host_seen: set[str] = set()

    # -- sessions -------------------------------------------------------------------
    @staticmethod
    def _limits(snippet: Snippet) -> dict[str, int]:
        return {**FUZZ_LIMITS, **dict(snippet.limits)}

    def _session_for(self, snippet: Snippet) -> Session:
        limits = self._limits(snippet)
        key = (snippet.tools, snippet.imports, tuple(sorted(limits.items())))
        held = self._sessions.get(key)
        if held is not None:
            session, uses = held
            if session.lost or uses >= self.config.session_reuse:
                session.close()
                del self._sessions[key]
                held = None
        if held is None:
            # Keep few sessions open: each one holds a container.
            while len(self._sessions) >= 2:
                old_key = next(iter(self._sessions))
                self._sessions.pop(old_key)[0].close()
            session = self._open(
                tools=snippet.tools,
                imports=snippet.imports,
                limits=limits,
                labels={"purpose": "fuzz"},
            )
            held = (session, 0)
        session, uses = held
        self._sessions[key] = (session, uses + 1)
        return session

    def _open(self, **kwargs: Any) -> Session:
        """OpenSession, retried while the pool refills (a busy pool is not a failure)."""
        for attempt in range(1, self.config.open_attempts + 1):
            try:
                return self.target.open_session(**kwargs)
            except TargetError as exc:
                if exc.code not in ("RESOURCE_EXHAUSTED", "UNAVAILABLE") or (
                    attempt == self.config.open_attempts
                ):
                    raise
                log.warning("OpenSession: %s; retrying", exc)
                time.sleep(2.0 * attempt)
        raise AssertionError("unreachable")

    def _close_sessions(self) -> None:
        for session, _ in self._sessions.values():
            session.close()
        self._sessions.clear()
        if self._control is not None:
            self._control.close()
            self._control = None

    def _control_check(self) -> str | None:
        """None when the control session answers correctly in time, else the problem."""
        for attempt in (1, 2):
            try:
                if self._control is None or self._control.lost:
                    self._control = self._open(labels={"purpose": "fuzz-control"})
                out = self._control.run(CONTROL_CODE, timeout=self.config.control_timeout_s)
            except TargetError as exc:
                return f"control session could not be opened: {exc} ({exc.code})"
            if out.verdict == "OK" and CONTROL_EXPECT in out.value:
                return None
            if attempt == 1 and out.verdict == "RPC_ERROR" and out.rpc_code == "NOT_FOUND":
                self._control = None  # expired; open a fresh one once
                continue
            return (
                f"control session answered {out.verdict} {out.rpc_code} {out.rpc_detail[:200]} "
                f"value={out.value[:100]!r} in {out.wall_s:.1f}s"
            )
        return "control session unusable"

    # -- checks ---------------------------------------------------------------------
    def _daemon_problems(self) -> list[str]:
        problems = []
        if self.daemon_alive is not None and not self.daemon_alive():
            problems.append("daemon process exited (crash)")
            return problems
        status = self.target.health_status()
        if status != "SERVING":
            problems.append(f"daemon health is {status}")
        return problems

    _warned_no_view = False

    def _no_global_view(self) -> None:
        if not self._warned_no_view:
            self._warned_no_view = True
            print(
                "corrald fuzz: not checking for container leaks: this token's GetStats does "
                "not show the daemon's pool; name its caller in the daemon's admin_callers",
                file=sys.stderr,
            )

    def _leak_problems(self) -> list[str]:
        if self.counter is None:
            return []
        deadline = time.monotonic() + self.config.leak_settle_s
        while True:
            try:
                stats = self.target.stats()
                actual = self.counter.count()
            except TargetError as exc:
                return [f"GetStats failed: {exc}"]
            except Exception as exc:  # Docker API trouble is reported, not fatal
                return [f"cannot count containers: {exc}"]
            if not stats.get("global_view", True):
                # A tenant's GetStats hides the pool: nothing to compare the count with.
                self._no_global_view()
                return []
            held = int(stats["warm"]) + int(stats["in_use"]) + int(stats["starting"])
            if actual <= held:
                return []
            if time.monotonic() > deadline:
                return [
                    f"container leak: {actual} managed containers for instance "
                    f"{self.instance_id}, daemon holds {held} ({stats})"
                ]
            time.sleep(0.25)

    def _judge(self, snippet: Snippet, out: RunOutcome) -> tuple[str, list[str]]:
        problems: list[str] = []
        shown = (out.stdout, out.streamed, out.value, out.final_answer)
        if any(MARKER in t for t in shown):
            problems.append(
                f"ESCAPE: the snippet printed the {MARKER} marker (verdict {out.verdict})"
            )
        for text in out.texts():
            for name in self.canaries.leaks(text):
                problems.append(f"CANARY LEAK: the {name} appeared in the snippet's output")
        for p in self.canaries.host_problems():
            if p not in self._host_seen:
                self._host_seen.add(p)
                problems.append(f"HOST: {p}")
        if out.verdict == "RPC_ERROR" and out.rpc_code == "DEADLINE_EXCEEDED":
            problems.append(f"HANG: no result within {out.wall_s:.1f}s")
        elif out.verdict == "RPC_ERROR" and out.rpc_code in ("UNAVAILABLE", "INTERNAL", "UNKNOWN"):
            problems.append(f"CRASH: Execute failed with {out.rpc_code}: {out.rpc_detail[:300]}")
        if out.verdict == "INTERNAL":
            problems.append(f"INTERNAL verdict: {out.error[:300]}")
        problems.extend(self._daemon_problems())
        if not problems:
            control = self._control_check()
            if control:
                problems.append(control)
        if self.config.check_containers and not problems:
            problems.extend(self._leak_problems())
        if problems:
            return "fail", problems
        if snippet.expect and out.verdict not in {str(v) for v in snippet.expect}:
            detail = out.rpc_code or out.error[:200]
            return "mismatch", [
                f"verdict {out.verdict} not in expected {[str(v) for v in snippet.expect]} {detail}"
            ]
        return "pass", []

    # -- the run ----------------------------------------------------------------------
    def run(self, snippets: Iterable[Snippet]) -> CampaignResult:
        started = time.time()
        deadline = time.monotonic() + self.config.budget_s
        stats = self.target.stats()
        self.instance_id = str(stats.get("instance_id", ""))
        if self.config.check_containers and self.instance_id:
            try:
                self.counter = ContainerCounter(self.instance_id)
            except Exception as exc:  # no Docker access: say so, keep fuzzing
                log.warning("container leak checks disabled: %s", exc)
        results: list[SnippetResult] = []
        exhausted = False
        try:
            for snippet in snippets:
                if time.monotonic() > deadline:
                    exhausted = True
                    break
                result = self.run_one(snippet)
                results.append(result)
                if self.progress:
                    self.progress(result)
                if any(
                    p.startswith(("daemon process exited", "daemon health"))
                    for p in result.problems
                ):
                    log.error("the daemon is down; stopping the campaign")
                    break
        finally:
            self._close_sessions()
        final = self._final_checks()
        return CampaignResult(
            results=results,
            started=started,
            finished=time.time(),
            budget_exhausted=exhausted,
            final_problems=final,
            daemon={"address": self.target.address, "instance_id": self.instance_id},
        )

    def run_one(self, snippet: Snippet) -> SnippetResult:
        limits = self._limits(snippet)
        timeout = (
            limits.get("wall_time_ms", 10_000) / 1000
            + self.config.hard_grace_s
            + self.config.hang_slack_s
        )
        try:
            session = self._session_for(snippet)
            out = session.run(snippet.code, timeout=timeout)
            if out.verdict == "RPC_ERROR" and out.rpc_code in ("NOT_FOUND", "FAILED_PRECONDITION"):
                # The session expired or is busy (not the snippet's doing): run it once more
                # on a fresh session so that it is really tested.
                session.lost = True
                session = self._session_for(snippet)
                out = session.run(snippet.code, timeout=timeout)
        except TargetError as exc:
            out = RunOutcome(verdict="RPC_ERROR", rpc_code=exc.code, rpc_detail=str(exc))
            status, problems = "fail", [f"could not open a session: {exc} ({exc.code})"]
            problems.extend(self._daemon_problems())
        else:
            if SHADOWABLE.intersection(out.state_names):
                session.lost = True  # retired: its builtins may be shadowed
            status, problems = self._judge(snippet, out)
        return SnippetResult(
            id=snippet.id,
            cls=snippet.cls,
            origin=snippet.origin,
            status=status,
            verdict=out.verdict,
            expect=[str(v) for v in snippet.expect],
            problems=problems,
            wall_s=round(out.wall_s, 4),
            session_lost=out.session_lost,
            code=snippet.code,
            source=snippet.source,
            mutations=list(snippet.mutations),
            rpc=f"{out.rpc_code} {out.rpc_detail[:300]}".strip(),
            output_excerpt=_excerpt(out),
        )

    def _final_checks(self) -> list[str]:
        problems = [f"HOST: {p}" for p in self.canaries.host_problems() if p not in self._host_seen]
        if self.counter is not None:
            # All fuzz sessions are closed: only the warm pool may remain.
            problems.extend(self._leak_problems())
        return problems


def summarize(results: Sequence[SnippetResult]) -> Mapping[str, Mapping[str, int]]:
    """counts[class][verdict]."""
    counts: dict[str, dict[str, int]] = {}
    for r in results:
        per = counts.setdefault(r.cls, {})
        per[r.verdict] = per.get(r.verdict, 0) + 1
    return counts
