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


# matplotlib's font cache is built at image build time into /opt/corral-mpl, but
# the root filesystem is read-only and matplotlib wants a writable MPLCONFIGDIR
# (else it warns and makes a temporary one, rescanning the fonts). The image sets
# MPLCONFIGDIR=/tmp/matplotlib (a tmpfs at run time); seed it with the cache.
_MPL_SEED = "/opt/corral-mpl"


def _seed_matplotlib_cache() -> None:
    target = os.environ.get("MPLCONFIGDIR")
    if not target or not os.path.isdir(_MPL_SEED) or os.path.isdir(target):
        return
    try:
        os.makedirs(target, mode=0o700)
        for name in os.listdir(_MPL_SEED):
            if name.endswith(".json"):
                with open(os.path.join(_MPL_SEED, name), "rb") as src:
                    data = src.read()
                with open(os.path.join(target, name), "wb") as dst:
                    dst.write(data)
    except OSError:
        pass  # no writable /tmp: matplotlib falls back (with a warning) on its own


_seed_matplotlib_cache()
