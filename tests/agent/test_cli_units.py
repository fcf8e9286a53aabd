"""`corral` pieces that need no daemon: argument parsing, exit codes, REPL blocks."""

from __future__ import annotations

import io

import pytest

from agent.cli import EXIT_BY_VERDICT, build_parser, for_terminal, read_blocks
from agent.results import Verdict

SOURCE = """x = 1
x + 1
for i in range(3):
    print(i)
y = 2
def f(a):
    if a:
        return 1

    return 2

f(0)
if x:
    print('a')
else:
    print('b')
print(x +
   1)
1/
@dec
def g(): pass
g()
"""


def _blocks(lookahead: bool) -> list[str]:
    return list(read_blocks(iter(SOURCE.splitlines(True)), lambda p: None, lookahead=lookahead))


def test_repl_blocks_piped_input_uses_lookahead() -> None:
    assert _blocks(lookahead=True) == [
        "x = 1",
        "x + 1",
        "for i in range(3):\n    print(i)",
        "y = 2",
        "def f(a):\n    if a:\n        return 1\n\n    return 2",  # inner blank line kept
        "f(0)",
        "if x:\n    print('a')\nelse:\n    print('b')",  # else: continues the block
        "print(x +\n   1)",
        "1/",  # incomplete forever: sent as is, the sandbox reports SYNTAX_ERROR
        "@dec\ndef g(): pass",
        "g()",
    ]


def test_repl_blocks_interactive_end_at_blank_line_like_python() -> None:
    blocks = _blocks(lookahead=False)
    assert "def f(a):\n    if a:\n        return 1" in blocks
    assert "    return 2" in blocks
    prompts: list[str] = []
    list(read_blocks(iter(["for i in (1,):\n", "    i\n", "\n"]), prompts.append))
    assert prompts == [">>> ", "... ", "... ", ">>> "]


def test_every_verdict_has_a_distinct_exit_code() -> None:
    assert set(EXIT_BY_VERDICT) == set(Verdict)
    failures = [code for v, code in EXIT_BY_VERDICT.items() if not v.ok]
    assert len(failures) == len(set(failures)) and 0 not in failures and 2 not in failures
    assert EXIT_BY_VERDICT[Verdict.OK] == EXIT_BY_VERDICT[Verdict.OUTPUT_TRUNCATED] == 0


def test_argument_parsing() -> None:
    parser = build_parser()
    args = parser.parse_args(["exec", "print(1)", "--json", "--import", "numpy", "--target", "h:1"])
    assert (args.code, args.json, args.imports, args.target) == ("print(1)", True, ["numpy"], "h:1")
    demo = parser.parse_args(["demo"])
    assert demo.model is None and demo.max_steps == 10
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["exec"])  # neither CODE nor -f
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["agent", "task"])  # --model is required


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_sandbox_text_is_inert_on_a_terminal() -> None:
    hostile = "ok\x1b]0;pwned\x07\x1b[2J\tend\n"
    assert for_terminal(hostile, _Tty()) == "ok\\x1b]0;pwned\\x07\\x1b[2J\tend\n"
    assert for_terminal(hostile, io.StringIO()) == hostile  # piped: byte-exact
