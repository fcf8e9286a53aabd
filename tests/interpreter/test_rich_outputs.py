"""Rich outputs of the interpreter: stderr, the sys facade, tracebacks across snippets,
artifacts (figures, images), DataFrame tables, and the everyday fixes of the
interpreter's messages."""

from __future__ import annotations

import pytest

from executor.interpreter import Interpreter, Limits, Verdict
from proto.results import ErrorInfo, TraceFrame

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make(**kwargs: object) -> Interpreter:
    return Interpreter(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- stderr and sys


def test_stderr_is_a_separate_stream_and_streams_to_its_callback() -> None:
    seen: list[str] = []
    interp = make(stderr_callback=seen.append)
    res = interp.run(
        "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.stderr.write('e2')"
    )
    assert res.ok
    assert res.stdout == "out\n"
    assert res.stderr == "err\ne2"
    assert "".join(seen) == "err\ne2"


def test_warnings_go_to_stderr() -> None:
    res = make(authorized_imports=("warnings",)).run("import warnings\nwarnings.warn('careful')\n1")
    assert res.ok and "careful" in res.stderr and "careful" not in res.stdout


def test_sys_facade_offers_facts_and_nothing_that_reaches_the_process() -> None:
    import sys

    interp = make()
    res = interp.run("import sys\n(sys.maxsize, tuple(sys.version_info)[:2], sys.platform)")
    assert res.ok and res.value is not None
    assert res.value.json == [sys.maxsize, list(sys.version_info[:2]), sys.platform]
    for name in ("modules", "path", "exit", "settrace", "stdin", "executable", "getrefcount"):
        res = interp.run(f"import sys\nsys.{name}")
        assert res.verdict is Verdict.ERROR, name
        assert res.error is not None and "not available in snippets" in res.error.message
    res = interp.run("import sys\nsys.stdout.buffer")
    assert res.verdict in (Verdict.ERROR, Verdict.POLICY_DENIED)
    res = interp.run("import sys\nsys.maxsize = 3")
    assert res.verdict is Verdict.POLICY_DENIED


def test_io_csv_and_pure_paths_work_in_memory() -> None:
    res = make().run(
        "import csv, io\nfrom pathlib import PurePosixPath\n"
        "buf = io.StringIO()\nw = csv.writer(buf)\nw.writerow(['a', 1])\n"
        "rows = list(csv.reader(io.StringIO(buf.getvalue())))\n"
        "(rows, PurePosixPath('/workspace/x/data.csv').name, io.BytesIO(b'ab').read())"
    )
    assert res.ok, res.error
    assert res.value is not None and "data.csv" in res.value.repr and "['a', '1']" in res.value.repr


@pytest.mark.parametrize(
    "code",
    ["import io\nio.open('/etc/passwd')", "import io\nio.FileIO", "import pathlib\npathlib.Path"],
)
def test_io_and_pathlib_facades_refuse_file_access(code: str) -> None:
    res = make().run(code)
    assert res.verdict is Verdict.ERROR
    assert res.error is not None and "not available in snippets" in res.error.message


# ---------------------------------------------------------------- tracebacks


def test_error_in_a_function_from_an_earlier_snippet_shows_its_source() -> None:
    interp = make()
    assert interp.run("def ratio(a, b):\n    scale = 1\n    return a / b * scale").ok
    assert interp.run("x = 1").ok
    res = interp.run("total = 0\nratio(1, 0)")
    assert res.verdict is Verdict.ERROR and res.error is not None
    assert res.error.frames == [
        TraceFrame(3, 2, "<module>", "ratio(1, 0)"),
        TraceFrame(1, 3, "ratio", "return a / b * scale"),
    ]
    assert res.error.line == 3 and res.error.source_line == "return a / b * scale"
    assert res.error.traceback == (
        "Traceback (most recent call last):\n"
        "  Snippet 3, line 2, in <module>\n"
        "    ratio(1, 0)\n"
        "  Snippet 1, line 3, in ratio\n"
        "    return a / b * scale\n"
        "ZeroDivisionError: division by zero"
    )
    assert "executor" not in res.error.traceback and ".py" not in res.error.traceback


def test_traceback_never_shows_host_frames() -> None:
    res = make().run("import json\njson.loads('{bad')")
    assert res.error is not None
    assert [f.snippet for f in res.error.frames] == [1]
    assert "json" not in "".join(f.function for f in res.error.frames)


def test_deep_recursion_keeps_a_bounded_traceback() -> None:
    res = make(limits=Limits(recursion_depth=150)).run("def f(n):\n    return f(n + 1)\nf(0)")
    assert res.verdict is Verdict.ERROR and res.error is not None
    assert 0 < len(res.error.frames) <= 50


def test_syntax_errors_carry_their_snippet_number() -> None:
    interp = make()
    interp.run("x = 1")
    res = interp.run("y = (")
    assert res.verdict is Verdict.SYNTAX_ERROR and res.error is not None
    assert res.error.frames and res.error.frames[0].snippet == 2


# ---------------------------------------------------------------- messages


def test_error_text_omits_what_is_unknown() -> None:
    assert str(ErrorInfo("ValueError", "bad", line=1)) == "ValueError: bad (line 1)"
    assert str(ErrorInfo("ValueError", "bad")) == "ValueError: bad"
    assert str(ErrorInfo("ValueError", "bad", 2, "x = f()")) == "ValueError: bad (line 2: x = f())"


def test_refusals_have_one_name_at_compile_and_run_time() -> None:
    static = make().run("import os")
    dynamic = make().run("m = 'o' + 's'\n__import__(m)")
    attr = make().run("(1).__class__")
    assert static.error is not None and static.error.type == "PolicyViolation"
    assert attr.error is not None and attr.error.type == "PolicyViolation"
    assert dynamic.verdict is Verdict.POLICY_DENIED


def test_memory_error_names_the_limit() -> None:
    res = make(limits=Limits(memory_bytes=256 << 20)).run("raise MemoryError()")
    assert res.verdict is Verdict.MEMORY_LIMIT and res.error is not None
    assert "268435456 bytes" in res.error.message and "256 MiB" in res.error.message


def test_denied_import_says_how_to_allow_it() -> None:
    res = make().run("import numpy")
    assert res.error is not None
    assert "imports=['numpy']" in res.error.message and "--import numpy" in res.error.message
    res = make().run("import os")
    assert res.error is not None and "never-import list" in res.error.message


# ---------------------------------------------------------------- packages


def test_authorized_package_submodules_reachable_as_attributes() -> None:
    res = make(authorized_imports=("numpy",)).run(
        "import numpy as np\nrng = np.random.default_rng(0)\n"
        "(np.linalg.norm([3, 4]), type(np.__version__).__name__)"
    )
    assert res.ok, res.error
    assert res.value is not None and res.value.repr == "(np.float64(5.0), 'str')"


@pytest.mark.parametrize("sub", ["ctypeslib", "f2py", "testing"])
def test_denied_submodules_stay_out_of_reach(sub: str) -> None:
    res = make(authorized_imports=("numpy",)).run(f"import numpy as np\nnp.{sub}")
    assert res.verdict is Verdict.POLICY_DENIED, res.error
    assert res.error is not None and "never available in snippets" in res.error.message


def test_module_version_is_readable_but_other_dunders_are_not() -> None:
    res = make(authorized_imports=("numpy",)).run("import numpy\nnumpy.__version__")
    assert res.ok and res.value is not None and res.value.json.count(".") >= 1
    assert make().run("import math\nmath.__dict__").verdict is Verdict.POLICY_DENIED
    assert make().run("import math\nmath.__loader__").verdict is Verdict.POLICY_DENIED


# ---------------------------------------------------------------- artifacts

mpl = pytest.importorskip("matplotlib")
pytest.importorskip("PIL")


def _figure_code(show: bool) -> str:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\n"
    return code + ("plt.show()\n" if show else "")


def test_plt_show_returns_a_png_artifact_and_streams_it() -> None:
    streamed: list[object] = []
    interp = make(authorized_imports=("matplotlib.*",), artifact_callback=streamed.append)
    res = interp.run(_figure_code(show=True) + "print('after')")
    assert res.ok, res.error
    assert len(res.artifacts) == 1 and streamed == res.artifacts
    art = res.artifacts[0]
    assert art.mime_type == "image/png" and art.data.startswith(PNG_MAGIC)
    assert art.metadata == {"width": 640, "height": 480}
    assert art.name.startswith("figure-")


def test_open_figures_are_collected_at_the_end_and_closed() -> None:
    interp = make(authorized_imports=("matplotlib.*",))
    res = interp.run(_figure_code(show=False))
    assert res.ok and [a.mime_type for a in res.artifacts] == ["image/png"]
    again = interp.run("x = 1")
    assert again.ok and again.artifacts == []


def test_svg_on_request() -> None:
    interp = make(authorized_imports=("matplotlib.*",), limits=Limits(figure_format="svg"))
    res = interp.run(_figure_code(show=True))
    assert res.ok and res.artifacts[0].mime_type == "image/svg+xml"
    assert b"<svg" in res.artifacts[0].data


def test_svg_on_request_from_the_snippet() -> None:
    interp = make(authorized_imports=("matplotlib.*",))
    res = interp.run(_figure_code(show=False) + "plt.show(format='svg')")
    assert res.ok and [a.mime_type for a in res.artifacts] == ["image/svg+xml"]
    res = interp.run(
        "import matplotlib.pyplot as plt\nfig = plt.figure()\ndisplay(fig, format='svg')\n"
        "display(fig)\nplt.close(fig)"
    )
    assert res.ok and [a.mime_type for a in res.artifacts] == ["image/svg+xml", "image/png"]
    res = interp.run("import matplotlib.pyplot as plt\ndisplay(plt.figure(), format='gif')")
    assert res.verdict is Verdict.ERROR and res.error is not None
    assert "format must be one of png, svg" in res.error.message


def test_pil_image_as_value_and_display() -> None:
    interp = make(authorized_imports=("PIL.*",))
    res = interp.run(
        "from PIL import Image\nimg = Image.new('RGB', (32, 16), 'red')\ndisplay(img)\nimg"
    )
    assert res.ok, res.error
    assert [a.metadata for a in res.artifacts] == [{"width": 32, "height": 16}] * 2
    assert all(a.data.startswith(PNG_MAGIC) for a in res.artifacts)


def test_final_answer_image_comes_back_as_an_artifact() -> None:
    res = make(authorized_imports=("PIL.*",)).run(
        "from PIL import Image\nfinal_answer(Image.new('L', (8, 8)))"
    )
    assert res.is_final_answer and len(res.artifacts) == 1


def test_huge_figure_is_not_rendered() -> None:
    res = make(authorized_imports=("matplotlib.*",)).run(
        "import matplotlib.pyplot as plt\nfig = plt.figure(figsize=(200, 200), dpi=100)\nplt.show()"
    )
    assert res.ok and res.artifacts == []
    assert "20000x20000" in res.stderr and "max_image_pixels" in res.stderr


def test_artifact_count_is_capped_per_snippet() -> None:
    res = make(authorized_imports=("PIL.*",), limits=Limits(max_artifacts=3)).run(
        "from PIL import Image\nfor i in range(10):\n    display(Image.new('L', (4, 4)))"
    )
    assert res.ok and len(res.artifacts) == 3 and "max_artifacts" in res.stderr


def test_display_refuses_what_is_not_an_image() -> None:
    res = make().run("display({'a': 1})")
    assert res.verdict is Verdict.ERROR and res.error is not None
    assert "display() takes" in res.error.message
    res = make().run("display(b'not an image')")
    assert res.verdict is Verdict.ERROR


def test_display_accepts_png_bytes_by_magic() -> None:
    res = make().run(f"display({PNG_MAGIC + b'rest'!r})")
    assert res.ok and res.artifacts[0].mime_type == "image/png"


def test_decompression_bomb_is_an_error_not_a_crash() -> None:
    import io as host_io

    from PIL import Image

    buf = host_io.BytesIO()
    Image.new("1", (12000, 12000)).save(buf, format="PNG")  # tiny file, 144 Mpx
    interp = make(authorized_imports=("PIL.*",), variables={"blob": buf.getvalue()})
    interp.run("from PIL import Image")
    res = interp.run("import io\nimg = Image.open(io.BytesIO(blob))\nimg.load()")
    assert res.verdict is Verdict.ERROR and res.error is not None
    assert "DecompressionBomb" in res.error.type


# ---------------------------------------------------------------- tables


def test_dataframe_value_is_a_bounded_markdown_table_with_records() -> None:
    pytest.importorskip("pandas")
    res = make(authorized_imports=("pandas",)).run(
        "import pandas as pd\npd.DataFrame({'a': range(100), 'b': ['x|y'] * 100})"
    )
    assert res.ok and res.value is not None
    table = res.value.repr
    assert table.splitlines()[0] == "|  | a | b |"
    assert "x\\|y" in table and "(20 of 100 rows)" in table
    assert res.value.has_json and res.value.json[0] == {"a": 0, "b": "x|y"}
    assert len(res.value.json) == 20


def test_series_value_is_a_table_too() -> None:
    pytest.importorskip("pandas")
    res = make(authorized_imports=("pandas",)).run(
        "import pandas as pd\npd.Series([1, 2], name='n')"
    )
    assert res.ok and res.value is not None and res.value.type == "Series"
    assert "| n |" in res.value.repr


# -- from-imports of submodules (`from PIL import Image`) ------------------------------


def test_from_import_loads_a_submodule_the_package_did_not_import() -> None:
    interp = Interpreter(authorized_imports=("PIL", "PIL.*"))
    result = interp.run("from PIL import Image, ImageDraw\nImage.new('L', (3, 2)).size")
    assert result.verdict is Verdict.OK, result.error
    assert result.value is not None and result.value.json == [3, 2]


def test_from_import_of_a_denied_submodule_is_still_refused() -> None:
    interp = Interpreter(authorized_imports=("PIL", "PIL.*"))
    result = interp.run("from PIL import ImageShow\nImageShow")
    assert result.verdict is Verdict.POLICY_DENIED
    assert result.error is not None and "'PIL.ImageShow'" in result.error.message
