#!/usr/bin/env bash
# CI: the fleet tests (tests/fleet/) run nginx from Debian's package in front of
# three daemons. Installs nginx-light when no nginx is on the machine; a no-op
# otherwise. The package's own service is not started (the tests run their own
# nginx on an ephemeral loopback port).
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-nginx: no apt-get here; install nginx (with the gRPC module) by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101: do not start the packaged service during installation.
$SUDO sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends nginx-light
