"""What the runner in this tree supports of the issue #11 frames (proto/frames.md).

The daemon side of interrupts and checkpoints is tested end to end against
the real runner once the runner side lands; until then those tests skip
with this reason, and the daemon logic is tested against a fake sandbox.
"""

from __future__ import annotations

from pathlib import Path

import pytest

RUNNER_DIR = Path(__file__).resolve().parents[2] / "executor" / "runner"


def runner_handles(kind: str) -> bool:
    """True when the runner's sources name the frame type (handled in its loop or reader)."""
    needle = f'"{kind}"'
    return any(needle in p.read_text() for p in RUNNER_DIR.glob("*.py"))


RUNNER_INTERRUPTS = runner_handles("interrupt")
RUNNER_CHECKPOINTS = runner_handles("checkpoint")

needs_runner_interrupt = pytest.mark.skipif(
    not RUNNER_INTERRUPTS, reason="the runner in this tree does not handle `interrupt` frames yet"
)
needs_runner_checkpoints = pytest.mark.skipif(
    not RUNNER_CHECKPOINTS,
    reason="the runner in this tree does not handle `checkpoint` frames yet",
)
