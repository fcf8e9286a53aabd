"""Start-up hook of the sandbox image, run from corral.pth before any user code.

Python 3.11's ``os.cpu_count()`` counts the host's online CPUs, not the CPU
set the container is pinned to, so libraries sizing thread pools from it would
oversubscribe the session's CPU share. Python 3.13 added
``os.process_cpu_count()`` for exactly this; here ``os.cpu_count()`` reports
the affinity mask (which the container's cpuset sets) instead.
"""

import os

_host_cpu_count = os.cpu_count


def _cpu_count() -> "int | None":
    try:
        return len(os.sched_getaffinity(0)) or _host_cpu_count()
    except OSError:
        return _host_cpu_count()


os.cpu_count = _cpu_count
