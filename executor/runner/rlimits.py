"""Turn a session's limits into kernel rlimits: the runner's own backstop.

This is the one place where limits become rlimits (the Docker side lives in
`executor.sandbox.hardening.container_config`). Three limits matter here:

- RLIMIT_AS, a little below the container's memory, so a big allocation fails
  inside Python with MemoryError (verdict MEMORY_LIMIT, session kept) instead
  of waking the cgroup OOM killer (container lost). It never goes below
  `AS_FLOOR_BYTES`: the address space that Python with the interpreter, numpy
  and pandas imported reserves (measured: VmPeak about 155 MiB, most of it
  untouched virtual reservations by numpy/OpenBLAS), plus room to work.
- RLIMIT_CPU, per snippet: the soft limit is set to the CPU time used so far
  plus the snippet's budget, and lifted again afterwards. The kernel sends
  SIGXCPU at the soft limit (and again every second); our handler raises
  `CpuLimitExceeded`, which the interpreter turns into verdict CPU_LIMIT.
  The hard limit is left alone on purpose: the runner is unprivileged
  (uid 65534, no capabilities), and an unprivileged process can lower its
  hard limit but never raise it again, so a per-snippet hard limit would
  starve every later snippet of the session. A snippet stuck in C code that
  never returns to the bytecode loop is ended by the daemon's hard wall-clock
  timeout instead.
- RLIMIT_CORE 0: no core files in the tmpfs.

Standard library only: this module runs inside the sandbox image.
"""

from __future__ import annotations

import contextlib
import math
import resource
import signal
from collections.abc import Callable, Iterator
from typing import Any

MiB = 1 << 20
AS_HEADROOM_BYTES = 64 * MiB  # kept free below the container limit for the C heap, stacks
AS_FLOOR_BYTES = 256 * MiB  # never less address space than interpreter + numpy + pandas need


def address_space_bytes(memory_bytes: int) -> int:
    """The RLIMIT_AS that makes an allocation past the container's memory a MemoryError."""
    return max(int(memory_bytes) - AS_HEADROOM_BYTES, AS_FLOOR_BYTES)


def apply_rlimits(limits: dict[str, Any]) -> dict[str, int]:
    """Apply the session-wide rlimits (address space, core) from a limits dict.

    `limits` holds the keys of the init frame (`memory_bytes`, ...). Returns
    what was set, for diagnostics. Limits can only go down for an
    unprivileged process, so the hard limit is lowered only for RLIMIT_CORE;
    RLIMIT_AS is set as soft limit below an unchanged hard limit.
    """
    applied: dict[str, int] = {}
    memory = int(limits.get("memory_bytes") or 0)
    if memory > 0:
        want = address_space_bytes(memory)
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            want = min(want, hard)
        resource.setrlimit(resource.RLIMIT_AS, (want, hard))
        applied["as_bytes"] = want
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    applied["core_bytes"] = 0
    return applied


def cpu_seconds_used() -> float:
    """CPU time (user + system) of this process so far, in seconds."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@contextlib.contextmanager
def cpu_budget(cpu_time_ms: int) -> Iterator[None]:
    """Arm RLIMIT_CPU for one snippet: SIGXCPU once it used `cpu_time_ms` more CPU.

    RLIMIT_CPU counts whole seconds, so the budget is rounded up to the next
    second of total process CPU time. The soft limit is lifted back to the
    hard limit on exit (allowed: soft may move freely below hard).
    """
    if cpu_time_ms <= 0:
        yield
        return
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(cpu_seconds_used() + cpu_time_ms / 1000.0)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))


def install_sigxcpu_handler(make_exception: Callable[[], BaseException | None]) -> None:
    """Raise `make_exception()` in the main thread whenever SIGXCPU arrives.

    `make_exception` returns None when no snippet is running: a late SIGXCPU
    that lands between snippets (the kernel repeats it every second) must not
    blow up the runner's own code.
    """

    def _on_sigxcpu(signum: int, frame: Any) -> None:
        exc = make_exception()
        if exc is not None:
            raise exc

    signal.signal(signal.SIGXCPU, _on_sigxcpu)


def base_address_space(limits: dict[str, Any]) -> int:
    """The RLIMIT_AS `apply_rlimits` sets for these limits (0: none)."""
    memory = int(limits.get("memory_bytes") or 0)
    if memory <= 0:
        return 0
    want = address_space_bytes(memory)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    return want


def set_address_space(soft_bytes: int) -> None:
    """Set the soft RLIMIT_AS (checkpoints lower it by what they reserve, drops raise it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = max(int(soft_bytes), 0)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
