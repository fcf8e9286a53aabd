"""Helpers for Docker tests that drive sandboxes (used by tests/container/test_runner,
test_driver and test_hostile): start labelled sandboxes, destroy them all at the end."""

from __future__ import annotations

import uuid
from typing import Any

from executor.sandbox import LABEL_INSTANCE, LABEL_MANAGED, LABEL_ROLE
from executor.sandbox.driver import Sandbox
from proto.limits import SessionLimits

LABEL_CASE = "io.corral.test-case"  # unique per start: lets a test find its own container


class SandboxFactory:
    """Starts sandboxes labelled for this test run; `cleanup()` destroys every one."""

    def __init__(self, client: Any, image: str, instance: str) -> None:
        self.client = client
        self.image = image
        self.instance = instance
        self.started: list[Sandbox] = []
        self.cases: list[str] = []

    def labels(self) -> dict[str, str]:
        case = uuid.uuid4().hex
        self.cases.append(case)
        return {
            LABEL_MANAGED: "1",
            LABEL_INSTANCE: self.instance,
            LABEL_ROLE: "test",
            LABEL_CASE: case,
        }

    def start(self, limits: SessionLimits | None = None, **kwargs: Any) -> Sandbox:
        sb = Sandbox.start(
            self.client, self.image, limits or SessionLimits(), labels=self.labels(), **kwargs
        )
        self.started.append(sb)
        return sb

    def containers_of(self, case: str) -> list[Any]:
        return self.client.containers.list(all=True, filters={"label": f"{LABEL_CASE}={case}"})

    def cleanup(self) -> None:
        for sb in self.started:
            sb.destroy()
