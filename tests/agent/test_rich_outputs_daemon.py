"""Figures, stderr and tracebacks as the client, the CLI and the agents see them (real daemon)."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent import Artifact, Client, CodeAgent, Result, ScriptedModel, Stderr
from agent.integrations.mcp import artifact_images

pytestmark = pytest.mark.docker

IMPORTS = ["matplotlib", "matplotlib.*", "PIL", "PIL.*", "pandas"]
# Importing matplotlib takes seconds of a loaded 2-core machine's wall clock.
LIMITS = {"wall_time_ms": 20_000, "cpu_time_ms": 20_000}
PLOT = (
    "import matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)\n"
    "ax.plot([1, 2, 3], [1, 4, 9])\n"
    "plt.show()\n"
)
REPO = Path(__file__).resolve().parents[2]


def test_client_streams_artifacts_and_stderr_and_the_result_holds_them(daemon: Any) -> None:
    with Client(daemon.target) as client, client.session(imports=IMPORTS, limits=LIMITS) as s:
        code = "import sys\nprint('out')\nprint('warn', file=sys.stderr)\n" + PLOT
        items = list(s.stream(code))
        result = items[-1]
        assert isinstance(result, Result) and result.ok, result.error
        arts = [i for i in items if isinstance(i, Artifact)]
        assert [i for i in items if isinstance(i, Stderr)] == ["warn\n"]
        assert "".join(i for i in items if type(i) is str) == "out\n"
        assert result.stderr == "warn\n" and result.stdout == "out\n"
        assert result.artifacts == arts and len(arts) == 1
        art = arts[0]
        assert (art.name, art.mime_type, art.width, art.height) == (
            "figure-1",
            "image/png",
            640,
            480,
        )
        image = art.to_pil()  # decoded only when asked
        assert image.size == (640, 480)
        assert art.data_url().startswith("data:image/png;base64,iVBORw0KGgo")
        assert art.describe("out/figure-1.png") == "[figure 1: 640x480 PNG → out/figure-1.png]"


def test_an_error_across_snippets_carries_frames_and_traceback(daemon: Any) -> None:
    with Client(daemon.target) as client, client.session() as s:
        s.run("def ratio(a, b):\n    return a / b\n")
        r = s.run("ratio(1, 0)")
        assert r.error is not None and r.error.type == "ZeroDivisionError"
        assert [(f.snippet, f.line, f.source_line) for f in r.error.frames] == [
            (2, 1, "ratio(1, 0)"),
            (1, 2, "return a / b"),
        ]
        assert "Snippet 1, line 2, in ratio\n    return a / b" in r.error.traceback


def test_corral_exec_out_saves_figures_and_prints_one_line_each(
    daemon: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "exec",
            "--target",
            daemon.target,
            "--out",
            str(out),
            *[arg for name in IMPORTS for arg in ("--import", name)],
            "--wall-time-ms",
            "20000",
            "--limit",
            "cpu_time_ms=20000",
            "-c",
            PLOT + "import sys\nprint('to stderr', file=sys.stderr)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"[figure 1: 640x480 PNG → {out / 'figure-1.png'}]" in proc.stdout.splitlines()
    assert "to stderr" in proc.stderr and "to stderr" not in proc.stdout
    assert (out / "figure-1.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_code_agent_shows_figures_to_the_model_and_can_answer_with_an_image(
    daemon: Any,
) -> None:
    model = ScriptedModel(
        [
            "Thought: plot it.\n```py\n" + PLOT + "```",
            "Thought: answer with an image.\n```py\nfrom PIL import Image\n"
            "final_answer(Image.new('RGB', (12, 7), 'blue'))\n```",
        ]
    )
    with (
        Client(daemon.target) as client,
        CodeAgent(
            model=model, client=client, authorized_imports=IMPORTS, limits=LIMITS, max_steps=3
        ) as agent,
    ):
        answer = agent.run("Plot y = x^2 and show me a blue swatch.")
        assert isinstance(answer, Artifact) and answer.to_pil().size == (12, 7)
        # The second model call saw the figure as an OpenAI-compatible image part.
        second = model.calls_log[1]["messages"]
        observation = second[-1]
        assert observation["role"] == "user" and isinstance(observation["content"], list)
        text, image = observation["content"]
        assert text["type"] == "text" and "[figure 1: 640x480 PNG → attached below]" in text["text"]
        assert image["type"] == "image_url"
        assert image["image_url"]["url"].startswith("data:image/png;base64,")
        assert agent.write_memory_to_messages()[3] == observation


def test_code_agent_images_stay_within_the_step_budget(daemon: Any) -> None:
    many = (
        "import matplotlib.pyplot as plt\n"
        "for i in range(3):\n    plt.figure(figsize=(1, 1), dpi=10)\n    plt.show()\n"
    )
    model = ScriptedModel(["```py\n" + many + "```", "```py\nfinal_answer(1)\n```"])
    with (
        Client(daemon.target) as client,
        CodeAgent(
            model=model,
            client=client,
            authorized_imports=IMPORTS,
            limits=LIMITS,
            max_observation_images=2,
        ) as agent,
    ):
        assert agent.run("three figures") == 1
        content = model.calls_log[1]["messages"][-1]["content"]
        assert [part["type"] for part in content] == ["text", "image_url", "image_url"]
        assert "figure 3: 10x10 PNG → not shown" in content[0]["text"]


def test_mcp_turns_real_artifacts_into_image_content(daemon: Any) -> None:
    with Client(daemon.target) as client, client.session(imports=IMPORTS, limits=LIMITS) as s:
        result = s.run(PLOT)
    [(name, mime, data)] = artifact_images(result)
    assert (name, mime) == ("figure-1", "image/png")
    from PIL import Image

    assert Image.open(io.BytesIO(base64.b64decode(data))).size == (640, 480)
