"""`corrald fuzz`: attack a Corral daemon with malicious snippets and report.

Modules (each owns one thing):
- `corpus`: loads and validates the curated corpus (tests/corpus/*.toml).
- `mutators` / `grammar` / `generator`: new snippets from the corpus (AST
  mutations) and from a small grammar of escape primitives, deterministic by seed.
- `canaries`: host secrets and tripwires that must stay untouched.
- `target`: a minimal gRPC client of the daemon (stubs from proto/);
  `tools`: the hostile client-side tools the tool-abuse class calls.
- `launch`: starts `corrald serve` in a subprocess with the canary in its env.
- `campaign`: runs snippets, checks canaries and daemon health after each one,
  classifies outcomes (pass, mismatch, failure).
- `report`: JSON and Markdown reports.
- `cli`: the `corrald fuzz` subcommand.

Design log (approaches considered and rejected):
- Using the `agent` client package: the fuzzer is an operator tool shipped with
  the daemon; depending on the agent package would couple the two installs, and
  the fuzzer needs low-level control (raw tool-call answers, deliberately
  hostile tool results), so it speaks the generated gRPC stubs directly.
- Judging escapes by verdict alone: an escape that returns OK looks like any
  successful snippet. Every corpus snippet therefore prints the marker
  `ESCAPED` only after its dangerous step succeeded, and the canaries catch
  escapes that print nothing (a secret in any output, a connection to the
  tripwire port, a changed host directory).
- Random byte-level fuzzing: almost every input is a SyntaxError and says
  nothing about the policy. Mutations work on the AST (ast.unparse), so every
  generated snippet parses.
"""
