#!/usr/bin/env bash
# The README's main command (`make run`): start the daemon, show `corral exec`
# and `corral demo` working against it, then keep serving until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TARGET="${CORRAL_LISTEN:-127.0.0.1:50051}"
export CORRAL_TARGET="$TARGET"

# Its own session: a terminal's Ctrl-C reaches only this script, which then
# asks the daemon for one graceful shutdown (a second signal would force it).
setsid "$PYTHON" -m executor.cli serve --listen "$TARGET" &
daemon=$!
stop() { kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; }
trap stop EXIT
trap 'stop; exit 130' INT TERM

echo "== corral exec (waits for the daemon's warm pool) =="
"$PYTHON" -m agent.cli exec --wait 180 'import math
print("primes:", [n for n in range(2, 40) if all(n % d for d in range(2, int(math.sqrt(n)) + 1))])
sum(range(101))'
echo
echo "== corral exec: the sandbox refuses an escape =="
"$PYTHON" -m agent.cli exec '().__class__.__bases__[0].__subclasses__()' || echo "(exit code $? = POLICY_DENIED, as intended)"
echo
echo "== corral demo =="
"$PYTHON" -m agent.cli demo
echo
echo "corrald is serving on $TARGET (metrics: http://127.0.0.1:9464/metrics). Ctrl-C stops it."
wait "$daemon"
