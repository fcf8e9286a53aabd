"""Layer matrix: every corpus entry that one layer must stop on its own, run against that layer alone.

- "interpreter": the restricted interpreter in-process, no container. The
  entry must end with one of its expected verdicts, print no escape marker,
  leak no canary and leave the host canaries untouched.
- "container": raw CPython (no interpreter) in the hardened container, through
  the driver's raw mode. The container alone must stop it: no marker, no
  canary in any output, no tripwire connection, the host directory unchanged,
  the run bounded, and the container destroyable afterwards. Verdicts are not
  compared: raw CPython happily runs `import os`; what matters is that the
  dangerous step fails. Denial-of-service entries get a container of their
  own; the others share one, replaced whenever it breaks. The column runs
  under each runtime, runc and runsc (gVisor), so the container layer is
  shown to hold with and without gVisor underneath.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from executor.fuzz.canaries import Canaries
from executor.fuzz.corpus import MARKER, CorpusEntry, load_corpus
from executor.interpreter import Interpreter, Limits
from executor.sandbox import LABEL_INSTANCE, LABEL_ROLE
from proto.limits import SessionLimits
from tests.container.conftest import RUNTIMES, require_runtime

ENTRIES = load_corpus()
INTERPRETER = [e for e in ENTRIES if "interpreter" in e.layers]
CONTAINER = [e for e in ENTRIES if "container" in e.layers]
OWN_CONTAINER_CLASSES = frozenset({"dos"})  # these may wreck the container they run in
# Entries whose escape marker means something else under gVisor, each with the
# stronger check of the attack class that replaces the marker there, and why.
GVISOR_DIFFERENCES: dict[str, tuple[str, str]] = {
    "hh-mknod-device": (
        # gVisor (runsc 20221219) lets a capability-less user mknod a device node
        # in its own tmpfs: the marker prints. The class is raw device access, and
        # gVisor has no host devices behind such a node: opening it must fail.
        """
import os, stat, json
out = []
for path, kind, dev in (("/tmp/corral-blk", stat.S_IFBLK, (8, 0)), ("/tmp/corral-mem", stat.S_IFCHR, (1, 1))):
    try:
        os.mknod(path, kind | 0o600, os.makedev(*dev))
    except OSError:
        pass
    try:
        fd = os.open(path, os.O_RDONLY)
        out.append(["opened", path, len(os.read(fd, 512))])
    except OSError as e:
        out.append(["refused", path, e.errno])
print(json.dumps(out))
""",
        "device nodes are gVisor's own: no host device behind them",
    ),
}
RAW_SLACK_S = 15.0  # beyond the entry's wall time, for the raw run to answer or be killed


def _assert_contained(
    entry: CorpusEntry, canaries: Canaries, shown: list[str], other: list[str]
) -> None:
    """`shown`: printed output and values (the marker must not be there); `other`: errors, state."""
    printed = "\n".join(shown)
    assert MARKER not in printed, f"{entry.id}: escape marker printed:\n{printed[:2000]}"
    joined = "\n".join(shown + other)
    assert canaries.leaks(joined) == [], f"{entry.id}: canary leaked:\n{joined[:2000]}"
    assert canaries.host_problems() == [], f"{entry.id}: {canaries.host_problems()}"


# -- interpreter layer -------------------------------------------------------------------


@pytest.mark.parametrize("entry", INTERPRETER, ids=[e.id for e in INTERPRETER])
def test_interpreter_alone_stops(entry: CorpusEntry, canaries: Canaries) -> None:
    wall = entry.limits.get("wall_time_ms", 2000) / 1000
    interp = Interpreter(authorized_imports=entry.imports, limits=Limits(wall_time_s=wall))
    result = interp.run(entry.render(canaries.placeholders()))
    shown = [result.stdout, str(result.value), str(result.final_answer)]
    other = [str(result.error)] + [f"{v.name} {v.repr} {v.json}" for v in result.state]
    _assert_contained(entry, canaries, shown, other)
    assert result.verdict in entry.expect, (
        f"{entry.id}: verdict {result.verdict} not in {[str(v) for v in entry.expect]}: {result.error}"
    )


def test_the_matrix_covers_both_layers() -> None:
    assert len(INTERPRETER) >= 100
    assert len(CONTAINER) >= 40
    assert {e.cls for e in CONTAINER} >= {"host_harm", "dos"}


# -- container layer (raw CPython in the hardened container) ----------------------------


class RawContainers:
    """Raw-mode sandboxes for the container column; one shared, DoS entries get their own."""

    def __init__(self, client: Any, image: str, instance: str, runtime: str = "runc") -> None:
        self.client, self.image, self.instance = client, image, instance
        self.runtime = runtime
        self.shared: Any = None

    def _start(self, limits: SessionLimits) -> Any:
        from executor.sandbox.driver import Sandbox

        sb = Sandbox.start(
            self.client,
            self.image,
            limits,
            labels={LABEL_INSTANCE: self.instance, LABEL_ROLE: "test"},
            raw=True,
            runtime=self.runtime,
        )
        sb.init(limits=limits.runner_limits())
        return sb

    def run(self, entry: CorpusEntry, code: str) -> tuple[list[str], list[str], float, str]:
        """(printed texts, other texts, seconds, outcome: a verdict or an error name)."""
        from executor.sandbox.driver import SandboxError

        limits = SessionLimits().merged(dict(entry.limits))
        own = entry.cls in OWN_CONTAINER_CLASSES or entry.limits
        if own:
            sb = self._start(limits)
        else:
            if self.shared is None:
                self.shared = self._start(limits)
            sb = self.shared
        streamed: list[str] = []
        start = time.monotonic()
        try:
            frame = sb.execute(
                code,
                timeout=limits.wall_time_ms / 1000 + RAW_SLACK_S,
                on_output=streamed.append,
            ).to_dict()
            shown = ["".join(streamed), str(frame.get("stdout", "")), str(frame.get("value"))]
            other = [str(frame.get("error")), str(frame.get("state"))]
            outcome = str(frame.get("verdict"))
        except SandboxError as exc:
            shown, other = ["".join(streamed)], [str(sb.stderr_tail)]
            outcome = type(exc).__name__
            own = True  # a broken sandbox is not reused
        elapsed = time.monotonic() - start
        if own:
            container_id = sb.container_id
            sb.destroy()
            if sb is self.shared:
                self.shared = None
            assert self._gone(container_id), (
                f"{entry.id}: container {container_id} survived destroy()"
            )
        return shown, other, elapsed, outcome

    def _gone(self, container_id: str, wait_s: float = 15.0) -> bool:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not self.client.api.containers(all=True, filters={"id": container_id}):
                return True
            time.sleep(0.2)
        return False

    def close(self) -> None:
        if self.shared is not None:
            self.shared.destroy()
            self.shared = None


@pytest.fixture(scope="module", params=RUNTIMES)
def raw_containers(
    request: pytest.FixtureRequest, docker_client: Any, sandbox_image: str, test_instance_id: str
) -> Iterator[RawContainers]:
    require_runtime(docker_client, request.param)
    rc = RawContainers(docker_client, sandbox_image, test_instance_id, runtime=request.param)
    yield rc
    rc.close()


@pytest.mark.docker
@pytest.mark.parametrize("entry", CONTAINER, ids=[e.id for e in CONTAINER])
def test_container_alone_stops(
    entry: CorpusEntry, canaries: Canaries, raw_containers: RawContainers
) -> None:
    if raw_containers.runtime == "runsc" and entry.id in GVISOR_DIFFERENCES:
        code, _why = GVISOR_DIFFERENCES[entry.id]
        shown, other, elapsed, outcome = raw_containers.run(entry, code)
        opened = [line for line in shown if '"opened"' in line]
        assert opened == [], f"{entry.id}: a device node could be opened under gVisor: {opened}"
        assert '"refused"' in shown[0] or '"refused"' in shown[1], (entry.id, shown, outcome)
        return
    shown, other, elapsed, outcome = raw_containers.run(
        entry, entry.render(canaries.placeholders())
    )
    _assert_contained(entry, canaries, shown, other)
    bound = SessionLimits().merged(dict(entry.limits)).wall_time_ms / 1000 + RAW_SLACK_S + 5
    assert elapsed < bound, f"{entry.id}: raw run took {elapsed:.1f}s ({outcome})"
