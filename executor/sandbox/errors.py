"""The one exception tree of the container channel (driver, daemon channel, protocol core).

After any error other than `SandboxRequestError` the channel is unusable: the
caller destroys the sandbox. `SandboxRequestError` is the runner refusing one
request (a bad path, a bad variable name) while it keeps serving.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base of every container-channel error."""


class SandboxTimeout(SandboxError):
    """No complete answer arrived in time (or the snippet's tool time ran out)."""


class SandboxProtocolError(SandboxError):
    """The sandbox sent garbage, an oversized frame, or a frame out of turn."""


class FrameSchemaError(SandboxProtocolError):
    """A frame from the sandbox does not match proto/frames.md."""


class SandboxGone(SandboxError):
    """The attach stream ended or broke: the container died, was killed or destroyed."""


class SandboxRequestError(SandboxError):
    """The runner answered a request with an `error` frame; the channel stays usable."""
