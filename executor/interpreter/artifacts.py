"""Figures and images a snippet makes, turned into `Artifact`s (bytes with a type).

Captured: matplotlib figures on `plt.show()` and every figure still open when
the snippet ends; whatever the snippet passes to `display(obj)` (a PIL image, a
matplotlib figure, PNG/JPEG/GIF bytes); a PIL image or figure left as the
snippet's last value or given to `final_answer`. Each is encoded as PNG (SVG
for figures when `Limits.figure_format` says so).

Bounded before any work is done: a figure or image over `max_image_pixels` is
not rendered, an encoding over `max_artifact_bytes` is dropped, and at most
`max_artifacts` are kept per snippet; each refusal leaves a one-line note on the
snippet's stderr instead of failing the snippet. Rendering runs host library
code on snippet objects, so the interpreter calls this inside a timed window.
The daemon checks every artifact again (size, and that the bytes match the
declared type): nothing here is trusted outside the sandbox.

Standard library only (matplotlib and PIL are used when the snippet already
imported them): this module is copied into the sandbox image.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import Any

from proto.results import Artifact

from .limits import Limits

# Magic numbers of the binary types `display(bytes)` accepts.
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff(data: bytes) -> str | None:
    """The image type of `data` by its magic number, or None."""
    for magic, mime in MAGIC:
        if data.startswith(magic):
            return mime
    return None


FIGURE_FORMATS = ("png", "svg")


def _check_format(fmt: Any) -> str | None:
    if fmt is None:
        return None
    if type(fmt) is not str or fmt not in FIGURE_FORMATS:
        raise ValueError(f"format must be one of {', '.join(FIGURE_FORMATS)}, not {fmt!r}")
    return fmt


def _is_pil_image(obj: Any) -> bool:
    module = sys.modules.get("PIL.Image")
    return module is not None and isinstance(obj, module.Image)


def _is_figure(obj: Any) -> bool:
    module = sys.modules.get("matplotlib.figure")
    return module is not None and isinstance(obj, module.Figure)


class ArtifactCollector:
    """The artifacts of the current snippet, with their caps."""

    def __init__(self, limits: Limits, callback: Callable[[Artifact], None] | None = None):
        self.limits = limits
        self.callback = callback  # streams each artifact as soon as it is made
        self.warn: Callable[[str], None] = lambda text: None  # the snippet's stderr
        self._items: list[Artifact] = []
        self._counter = 0  # names stay unique across the session: figure-1, figure-2...

    def start(self, limits: Limits) -> None:
        """Begin a snippet: forget the last one's artifacts, apply its limits."""
        self.limits = limits
        self._items = []
        pil = sys.modules.get("PIL.Image")
        if pil is not None:
            # PIL refuses to decode images over twice this many pixels
            # (DecompressionBombError), so a bomb fails as an error, not an OOM kill.
            current = getattr(pil, "MAX_IMAGE_PIXELS", None) or limits.max_image_pixels
            pil.MAX_IMAGE_PIXELS = min(current, limits.max_image_pixels)  # type: ignore[attr-defined]

    def finish(self) -> list[Artifact]:
        """The snippet's artifacts, in the order they were made."""
        items, self._items = self._items, []
        return items

    @staticmethod
    def is_image(obj: Any) -> bool:
        """True for objects that become artifacts when left as a value."""
        return _is_pil_image(obj) or _is_figure(obj)

    # ------------------------------------------------------------ capture

    def add(self, obj: Any, *, explicit: bool = False, fmt: str | None = None) -> None:
        """Turn obj into an artifact (display(obj), a last value, plt.show()).

        `fmt` ("png" or "svg") asks for a figure's encoding; the default is
        `Limits.figure_format`.
        """
        fmt = _check_format(fmt)
        if _is_figure(obj):
            self._figure(obj, fmt)
        elif _is_pil_image(obj):
            self._pil(obj)
        elif type(obj) in (bytes, bytearray):
            data = bytes(obj)
            mime = sniff(data)
            if mime is None:
                raise TypeError(
                    "display() takes PNG, JPEG or GIF bytes; these bytes are none of those"
                )
            self._keep("image", mime, data, {})
        elif explicit:
            raise TypeError(
                "display() takes a PIL image, a matplotlib figure, or PNG/JPEG/GIF bytes, "
                f"not {type(obj).__name__}; print() it instead"
            )

    def collect_figures(self, fmt: str | None = None) -> None:
        """Every open matplotlib figure becomes an artifact; then all are closed."""
        fmt = _check_format(fmt)
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return
        try:
            numbers = list(pyplot.get_fignums())
            for number in numbers:
                self._figure(pyplot.figure(number), fmt)
        finally:
            pyplot.close("all")

    # ------------------------------------------------------------ encoders

    def _figure(self, fig: Any, fmt: str | None = None) -> None:
        width_in, height_in = fig.get_size_inches()
        dpi = float(fig.dpi)
        width, height = round(width_in * dpi), round(height_in * dpi)
        if not self._pixels_ok("figure", width, height):
            return
        fmt = fmt or self.limits.figure_format
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi)
        mime = "image/svg+xml" if fmt == "svg" else "image/png"
        self._keep("figure", mime, buf.getvalue(), {"width": width, "height": height})

    def _pil(self, image: Any) -> None:
        width, height = image.size
        if not self._pixels_ok("image", int(width), int(height)):
            return
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        self._keep("image", "image/png", buf.getvalue(), {"width": width, "height": height})

    def _pixels_ok(self, kind: str, width: int, height: int) -> bool:
        cap = self.limits.max_image_pixels
        if width <= 0 or height <= 0 or width * height > cap:
            self.warn(
                f"[corral] {kind} of {width}x{height} pixels not sent: over the "
                f"{cap}-pixel cap (max_image_pixels); make it smaller\n"
            )
            return False
        return True

    def _keep(self, kind: str, mime: str, data: bytes, metadata: dict[str, Any]) -> None:
        if len(self._items) >= self.limits.max_artifacts:
            self.warn(
                f"[corral] {kind} not sent: this snippet already made "
                f"{self.limits.max_artifacts} artifacts (max_artifacts)\n"
            )
            return
        if len(data) > self.limits.max_artifact_bytes:
            self.warn(
                f"[corral] {kind} not sent: {len(data)} bytes, over the "
                f"{self.limits.max_artifact_bytes}-byte cap (max_artifact_bytes)\n"
            )
            return
        self._counter += 1
        artifact = Artifact(f"{kind}-{self._counter}", mime, data, metadata)
        self._items.append(artifact)
        if self.callback is not None:
            self.callback(artifact)
