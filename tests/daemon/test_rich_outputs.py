"""Rich outputs end to end through the real daemon: figures, tables, stderr, tracebacks."""

from __future__ import annotations

import json

import pytest

from proto import executor_pb2 as pb
from tests.daemon.helpers import execute, open_session

pytestmark = pytest.mark.docker

# Importing matplotlib takes a few seconds of a loaded 2-core machine's wall clock.
SLOW_OK = {"wall_time_ms": 20_000, "cpu_time_ms": 20_000}
IMPORTS = ["matplotlib", "matplotlib.*", "PIL", "PIL.*", "pandas", "numpy"]

PLOT = """
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
ax.plot([1, 2, 3], [1, 4, 9])
print("plotted")
plt.show()
print("after")
"""


@pytest.fixture
def sid(stub):
    session_id = open_session(stub, authorized_imports=IMPORTS, limits=SLOW_OK)
    yield session_id
    stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))


def test_plt_show_streams_a_png_artifact_between_the_outputs(stub, sid):
    run = execute(stub, sid, PLOT)
    assert run.result.verdict == pb.VERDICT_OK, run.result.error
    arts = [r.artifact for r in run.responses if r.HasField("artifact")]
    assert len(arts) == 1
    art = arts[0]
    assert art.mime_type == "image/png" and art.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert (art.width, art.height) == (640, 480)
    assert art.name == "figure-1"
    # Order: the print before show() arrives before the artifact, the one after it after.
    kinds = run.kinds
    first_art = kinds.index("artifact")
    texts = [(i, r.output.text) for i, r in enumerate(run.responses) if r.HasField("output")]
    assert any("plotted" in t and i < first_art for i, t in texts)
    assert any("after" in t and i > first_art for i, t in texts)
    # No stderr noise from matplotlib (font cache built at image build time).
    assert run.result.stderr == ""


def test_figures_left_open_and_pil_images_come_back(stub, sid):
    code = (
        "import matplotlib.pyplot as plt\nfrom PIL import Image\n"
        "plt.figure(figsize=(2, 1), dpi=50)\nplt.plot([0, 1])\n"
        "display(Image.new('RGB', (30, 20), 'red'))\n"
        "Image.new('L', (8, 8))"
    )
    run = execute(stub, sid, code)
    assert run.result.verdict == pb.VERDICT_OK, run.result.error
    arts = [r.artifact for r in run.responses if r.HasField("artifact")]
    sizes = sorted((a.width, a.height) for a in arts)
    assert sizes == [(8, 8), (30, 20), (100, 50)]
    assert all(a.data.startswith(b"\x89PNG") for a in arts)
    # The result never repeats the artifact bytes.
    assert run.result.ByteSize() < 10_000


def test_a_dataframe_value_comes_back_as_a_markdown_table(stub, sid):
    run = execute(stub, sid, "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})")
    value = run.result.value
    assert run.result.verdict == pb.VERDICT_OK
    assert value.type == "DataFrame"
    assert "| a" in value.repr and "| x" in value.repr.replace("|  x", "| x")
    assert value.has_json and json.loads(value.json) is not None


def test_stderr_is_apart_from_stdout(stub, sid):
    code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.maxsize > 0"
    run = execute(stub, sid, code)
    r = run.result
    assert r.verdict == pb.VERDICT_OK, r.error
    assert r.stdout == "out\n" and r.stderr == "err\n"
    chunks = [r.output for r in run.responses if r.HasField("output")]
    assert [c.text for c in chunks if c.stream == pb.STREAM_STDERR] == ["err\n"]
    assert "".join(c.text for c in chunks if c.stream == pb.STREAM_STDOUT) == "out\n"


def test_an_error_in_an_earlier_snippets_function_shows_its_line_and_source(stub, sid):
    execute(stub, sid, "def ratio(a, b):\n    total = a + b\n    return a / b\n")
    r = execute(stub, sid, "x = 1\nratio(x, 0)").result
    assert r.verdict == pb.VERDICT_ERROR
    assert r.error.type == "ZeroDivisionError"
    frames = [(f.snippet, f.line, f.function, f.source_line) for f in r.error.frames]
    assert frames == [(2, 2, "<module>", "ratio(x, 0)"), (1, 3, "ratio", "return a / b")]
    assert "Snippet 1, line 3, in ratio" in r.error.traceback
    assert r.error.traceback.endswith("ZeroDivisionError: division by zero")


def test_artifact_limits_are_session_limits(stub):
    session_id = open_session(
        stub,
        authorized_imports=IMPORTS,
        limits={"max_artifacts": 2, "max_artifact_bytes": 4096, **SLOW_OK},
    )
    try:
        code = (
            "import matplotlib.pyplot as plt\n"
            "for i in range(4):\n    plt.figure(figsize=(1, 1), dpi=20)\n    plt.show()\n"
            "plt.figure(figsize=(20, 20), dpi=100)\nplt.plot(range(1000))\nplt.show()"
        )
        run = execute(stub, session_id, code)
        assert run.result.verdict == pb.VERDICT_OK, run.result.error
        assert run.kinds.count("artifact") == 2
        assert "max_artifacts" in run.result.stderr
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))
