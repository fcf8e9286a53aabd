"""The limits the interpreter enforces on itself, in-process, per snippet."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    """Per-snippet limits the interpreter enforces in-process.

    Container-wide limits (memory, pids, workspace) live in `proto.limits`;
    these are the ones a single Python process can enforce on itself.
    """

    wall_time_s: float = 10.0  # soft wall-clock timeout per snippet, seconds
    output_bytes: int = 1 << 20  # printed output kept per snippet, bytes (UTF-8)
    code_bytes: int = 256 << 10  # maximum snippet size, bytes (UTF-8)
    recursion_depth: int = 200  # maximum nesting of snippet function calls
    int_bits: int = 1 << 20  # largest int a `**` or `<<` may produce, bits (~315k digits)
    int_str_digits: int = 4300  # int<->str conversion cap, decimal digits (CPython default)
    repr_chars: int = 1000  # length of reprs in `value` and `state`
    json_bytes: int = 64 << 10  # largest JSON value reported per variable, bytes
    state_items: int = 200  # most variables reported in `state`
    memory_bytes: int = 0  # the sandbox's memory limit, bytes, for messages (0 = unknown)
    max_artifacts: int = 16  # figures/images kept per snippet
    max_artifact_bytes: int = 8 << 20  # largest encoded figure/image, bytes
    max_image_pixels: int = 25_000_000  # largest figure/image rendered, pixels (5000x5000)
    figure_format: str = "png"  # "png" or "svg": how matplotlib figures are encoded
    table_rows: int = 20  # rows of a DataFrame/Series shown as the value's Markdown table
    table_chars: int = 8000  # longest Markdown table, characters

    def with_(self, **changes: Any) -> Limits:
        """Return a copy with some fields changed."""
        return Limits(**{**asdict(self), **changes})
