"""Every ```python block of README.md runs as written against a live daemon.

Each block runs in its own interpreter with $CORRAL_TARGET pointing at the
test's daemon and, for blocks that need a model, $OPENAI_BASE_URL pointing at
a scripted chat-completions endpoint on 127.0.0.1. A `# -> text` comment in a
block is a claim about what it prints: `text` must appear in its stdout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.agent.test_models import _completion, _Endpoint

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
CLAIM = re.compile(r"#\s*->\s*(.+?)\s*$", re.MULTILINE)

# What a model answers, for the blocks that build one: the 10th Fibonacci number,
# in the code format each agent reads (our CodeAgent: ```py; smolagents: <code>).
FIB = "a, b = 0, 1\nfor _ in range(10):\n    a, b = b, a + b\nfinal_answer(a)\n"
ANSWERS = {
    "OpenAICompatibleModel": f"Thought: iterate ten times.\n```py\n{FIB}```",
    "OpenAIServerModel": f"Thought: iterate ten times.\n<code>\n{FIB}</code>",
}


def readme_blocks() -> list[str]:
    return BLOCK.findall((REPO / "README.md").read_text("utf-8"))


def test_readme_has_the_blocks_the_issue_asks_for() -> None:
    text = (REPO / "README.md").read_text("utf-8")
    blocks = readme_blocks()
    assert len(blocks) >= 6
    joined = "\n".join(blocks)
    for name in ("AsyncClient", "CorralExecutor", "CorralWarning", "ClientClosed", "files()"):
        assert name in joined, name
    for fact in ("127.0.0.1:9464/metrics", "--metrics-address", "timeout=", "InvalidArgument"):
        assert fact in text, fact


@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_readme_block_runs_as_written(daemon: Any, tmp_path: Path, index: int) -> None:
    code = readme_blocks()[index]
    endpoint = _Endpoint()
    try:
        for marker, answer in ANSWERS.items():
            if marker in code:
                endpoint.answers.extend([(200, _completion(answer))] * 3)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CORRAL_", "OPENAI_"))}
        env.update(
            CORRAL_TARGET=daemon.target,
            OPENAI_BASE_URL=endpoint.base_url,
            OPENAI_API_KEY="sk-readme-test",
            PYTHONPATH=str(REPO),
        )
        script = tmp_path / f"block{index}.py"
        script.write_text(code, "utf-8")
        p = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=180,
        )
    finally:
        endpoint.close()
    assert p.returncode == 0, f"block {index} failed:\n{code}\n--- stderr:\n{p.stderr}"
    for claim in CLAIM.findall(code):
        assert claim in p.stdout, f"block {index} does not print {claim!r}:\n{p.stdout}"
