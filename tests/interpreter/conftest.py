"""Fixtures for the interpreter's conformance and security tests.

These tests exercise `executor.interpreter` through its public contract only
(`Interpreter(...)`, `run(code) -> Result`), with no Docker: the interpreter
layer alone must refuse every Python-level escape (DESIGN.md, "Layers").

The `canary` fixture is the side-effect detector every security test shares:
a file path that an escape would create, and a host environment variable whose
value an escape would leak. Escape payloads only ever try to create that file
or read that variable, so a failing test leaves nothing behind but a file
under pytest's own `tmp_path`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from executor.interpreter import Interpreter, Limits
from proto.results import Result, Verdict

# Small limits keep every test fast; a runaway snippet ends in about a second.
FAST_LIMITS = Limits(wall_time_s=2.0)

ENV_NAME = "CORRAL_INTERP_TEST_CANARY"

# A pure-CPython expression that creates the file PATH without any builtin name,
# module import or guard: it walks `object.__subclasses__()` to
# `warnings.catch_warnings`, whose `_module` is the real `warnings` module and
# whose `__builtins__` is the real builtins dict. Used inside strings that reach
# host-side eval sinks (annotations, format fields), where no AST check looks.
SUBCLASS_OPEN = (
    "[c for c in ().__class__.__base__.__subclasses__() "
    "if c.__name__ == 'catch_warnings'][0]()._module.__builtins__['open'](PATH, 'w').close()"
)


@dataclass
class Canary:
    """A file that must not appear and an env var value that must not leak."""

    path: Path
    secret: str

    @property
    def env_name(self) -> str:
        return ENV_NAME

    def fill(self, code: str) -> str:
        """Substitute PATH, ENV and SUBCLASS_OPEN placeholders in a snippet."""
        code = code.replace("SUBCLASS_OPEN", SUBCLASS_OPEN)
        return code.replace("PATH", repr(str(self.path))).replace("ENVNAME", repr(ENV_NAME))

    def assert_clean(self, *results: Result | None) -> None:
        """No file created; the secret appears in no field of any result."""
        assert not self.path.exists(), f"escape created the canary file {self.path}"
        for res in results:
            if res is None:
                continue
            blob = json.dumps(res.to_dict(), default=str)
            assert self.secret not in blob, "host environment variable leaked into the result"
            # A module object for os/sys/builtins must never reach the state.
            for var in res.state:
                for bad in (
                    "<module 'os'",
                    "<module 'sys'",
                    "<module 'builtins'",
                    "<module 'posix'",
                ):
                    assert bad not in var.repr, f"{var.name} holds {var.repr}"


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Canary]:
    secret = "canary-" + secrets.token_hex(8)
    monkeypatch.setenv(ENV_NAME, secret)
    c = Canary(path=tmp_path / "canary.txt", secret=secret)
    yield c
    # Always checked, even if the test body forgot to.
    assert not c.path.exists(), "escape created the canary file"


MakeInterp = Callable[..., Interpreter]


@pytest.fixture
def make_interp() -> MakeInterp:
    """Factory: an Interpreter with fast limits unless the test passes its own."""

    def make(**kwargs: Any) -> Interpreter:
        kwargs.setdefault("limits", FAST_LIMITS)
        return Interpreter(**kwargs)

    return make


def verdict_of(res: Result) -> Verdict:
    """The verdict as a Verdict (the contract allows a str-enum or a string)."""
    return Verdict(str(res.verdict))


DENIED = frozenset({Verdict.POLICY_DENIED})
# Where refusing at run time (an exception the snippet sees) is as safe as
# refusing up front, both verdicts are accepted; the side-effect checks decide.
DENIED_OR_ERROR = frozenset({Verdict.POLICY_DENIED, Verdict.ERROR})


def assert_refused(
    interp: Interpreter,
    canary: Canary,
    code: str,
    allowed: frozenset[Verdict] = DENIED,
    *,
    static: bool = False,
) -> Result:
    """Run a hostile snippet: verdict in `allowed`, no side effect, session still usable.

    `static=True` means the policy can see the construct in the AST, so the
    snippet must be refused before any of it runs: it starts by printing a
    marker that must not appear.
    """
    if static:
        code = "print('RAN-BEFORE-CHECK')\n" + code
    res = interp.run(canary.fill(code))
    assert verdict_of(res) in allowed, (
        f"verdict {res.verdict}, error {res.error}, stdout {res.stdout!r}"
    )
    canary.assert_clean(res)
    if static:
        assert "RAN-BEFORE-CHECK" not in res.stdout, "policy was not checked before running"
    after = interp.run("1 + 1")
    assert verdict_of(after) is Verdict.OK, f"session broken after refusal: {after.error}"
    assert after.value is not None and after.value.repr == "2"
    return res
