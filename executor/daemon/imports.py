"""Checks of a session's authorized imports, before any container is taken.

A never-import (os, subprocess, socket, ...) is refused with what the caller
can do instead; a name that is no module of the sandbox image is accepted but
reported as a warning in the OpenSession response (a typo such as "nunpy"
would otherwise surface only when a snippet's import fails).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from executor.daemon.errors import InvalidArgument

# Top-level modules the sandbox image installs besides the standard library;
# keep in step with sandbox_images/requirements.txt (package name -> import name).
IMAGE_MODULES: frozenset[str] = frozenset(
    {
        "numpy",
        "pandas",
        "dateutil",
        "tzdata",
        "RestrictedPython",
        "matplotlib",
        "contourpy",
        "cycler",
        "fontTools",
        "kiwisolver",
        "packaging",
        "PIL",
        "pyparsing",
    }
)
# Corral's own runner, which the image carries too: the agent-in-sandbox mode
# authorizes its `executor.runner.agent_sandbox` module.
CORRAL_MODULES: frozenset[str] = frozenset({"executor"})


def _is_never(module: str) -> bool:
    from executor.interpreter.modules import is_never

    return is_never(module)


def check_imports(entries: Iterable[str]) -> list[str]:
    """Warnings for the open response; InvalidArgument for an import no session may have."""
    warnings: list[str] = []
    for entry in entries:
        base = entry[:-2] if entry.endswith(".*") else entry
        if entry == "*" or not base:
            continue
        if _is_never(base):
            raise InvalidArgument(
                f"import {entry[:100]!r} cannot be authorized for a session: it reaches the "
                "process, the files, the network or code objects, and no daemon setting "
                "allows it. Instead: read and write session files with open() (confined to "
                "/workspace) and the client's upload/download; or give the session a tool "
                "(tools=[...]) that does the privileged work on your side, outside the sandbox"
            )
        top = base.split(".")[0]
        known = top in sys.stdlib_module_names or top in IMAGE_MODULES or top in CORRAL_MODULES
        if not known:
            warnings.append(
                f"authorized import {entry[:100]!r} names no module in the sandbox image "
                f"(a typo?); importing it will fail. Third-party modules in the image: "
                f"{', '.join(sorted(IMAGE_MODULES, key=str.lower))}"
            )
    return warnings
