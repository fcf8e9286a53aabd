"""The committed gRPC modules match what `python -m executor.protogen` generates."""

from __future__ import annotations

from pathlib import Path

from executor import protogen


def test_committed_modules_are_fresh(tmp_path: Path):
    generated = protogen.generate(tmp_path)
    for path in generated:
        committed = protogen.ROOT / "proto" / path.name
        assert committed.exists(), f"{committed} is missing: run `make proto`"
        assert committed.read_text() == path.read_text(), (
            f"{committed} is stale: run `make proto` and commit the result"
        )


def test_generated_stubs_import_as_the_proto_package():
    from proto import executor_pb2, executor_pb2_grpc

    assert executor_pb2.DESCRIPTOR.package == "corral.v1"
    assert hasattr(executor_pb2_grpc, "ExecutorStub")
