"""Fixtures of the fuzz tests: host canaries and the placeholder values they fill in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from executor.fuzz.canaries import CANARY_ENV, Canaries

# Placeholder values for tests that only need valid code, not live canaries.
DUMMY_VALUES = {
    "@@CANARY_ENV@@": CANARY_ENV,
    "@@CANARY_FILE@@": "/nonexistent/corral-secret.txt",
    "@@LISTEN_PORT@@": "9",
    "@@BRIDGE_HOST@@": "127.0.0.1",
    "@@BRIDGE_PORT@@": "9",
    "@@HOST_DIR@@": "/nonexistent/corral-host-dir",
}


@pytest.fixture(scope="module")
def canaries() -> Iterator[Canaries]:
    """Live canaries; the env secret is put in this process's environment for the module."""
    mp = pytest.MonkeyPatch()
    with Canaries() as c:
        mp.setenv(CANARY_ENV, c.env_value)
        try:
            yield c
        finally:
            mp.undo()
