"""The daemon raises its soft open-file limit (one descriptor per session) within the hard limit."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap

from executor.daemon.server import raise_fd_limit


def test_raise_fd_limit_in_a_child_with_a_low_soft_limit():
    # In a child process: the test runner's own limits stay as they are.
    code = textwrap.dedent(
        """
        import resource
        from executor.daemon.server import raise_fd_limit
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        before, after = raise_fd_limit(4096)
        now = resource.getrlimit(resource.RLIMIT_NOFILE)
        print(before, after, now[0], now[1] == hard, hard)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    before, after, now, same_hard, hard = int(out[0]), int(out[1]), int(out[2]), out[3], int(out[4])
    assert before == 256
    expected = 4096 if hard == resource.RLIM_INFINITY or hard >= 4096 else hard
    assert after == now == expected
    assert same_hard == "True"  # the hard limit is never touched


def test_raise_fd_limit_never_lowers():
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    before, after = raise_fd_limit(16)
    assert before == after == soft
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft
