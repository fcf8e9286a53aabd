#!/usr/bin/env bash
# Install gVisor (runsc) and register it with the local Docker engine, idempotently.
# What `corrald setup-runtime gvisor` does, runnable before Corral is installed
# (standard library + the docker CLI only): .ci/run calls it before `make test`.
# Needs root. Never restarts dockerd: it sends SIGHUP, which reloads runtimes
# and leaves running containers alone. The verifying probe is skipped here
# (it needs the sandbox image); the container tests run under runsc instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python3}" -m executor.sandbox.runtimes gvisor --no-probe "$@"
