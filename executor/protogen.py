"""Regenerate the committed gRPC modules from `proto/executor.proto`.

`python -m executor.protogen` (what `make proto` runs) writes
`proto/executor_pb2.py`, `proto/executor_pb2_grpc.py` and `proto/executor_pb2.pyi`.
The proto is compiled with `-I.` from the repository root, so the generated
stubs import `from proto import executor_pb2` and work as the `proto` package.
The modules are committed so users need no protoc; a test regenerates them into
a temporary directory and fails when the committed copies are stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = "proto/executor.proto"
GENERATED: tuple[str, ...] = ("executor_pb2.py", "executor_pb2_grpc.py", "executor_pb2.pyi")


class ProtogenError(Exception):
    """protoc failed; the message carries its exit code."""


def generate(out_dir: Path, root: Path = ROOT) -> list[Path]:
    """Compile the proto into `out_dir` (which receives a `proto/` subfolder).

    Returns the paths of the generated files. Needs grpcio-tools (a dev extra).
    """
    try:
        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ProtogenError(
            "grpcio-tools is not installed; install the dev extra: pip install -e '.[dev]'"
        ) from exc
    import importlib.resources

    include = str(importlib.resources.files("grpc_tools") / "_proto")
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{root}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(root / PROTO),
    ]
    code = protoc.main(args)
    if code != 0:
        raise ProtogenError(f"protoc exited with {code} compiling {PROTO}")
    return [out_dir / "proto" / name for name in GENERATED]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m executor.protogen", description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=ROOT, help="directory that receives proto/ (default: repo root)"
    )
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
