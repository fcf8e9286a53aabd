#!/usr/bin/env bash
# Build a minimal Debian bookworm root filesystem with python3 and write it as a
# tarball, for `docker import` as the sandbox's base image when no official
# Python image can be pulled. Needs root and debootstrap (Debian's package).
#
#   build_base.sh OUT.tar [MIRROR]
#
# The full `python3` package is included because python3-minimal lacks much of
# the standard library (json, email, asyncio, ...). apt caches, docs, man pages
# and locales are stripped: the sandbox never runs apt and has no network.
set -euo pipefail
out="$1"
mirror="${2:-http://deb.debian.org/debian}"
suite="${SUITE:-bookworm}"

if ! command -v debootstrap >/dev/null 2>&1; then
    echo "debootstrap missing: installing it with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
fi

root="$(mktemp -d /tmp/corral-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT

debootstrap --variant=minbase --include=python3 "$suite" "$root" "$mirror" >&2

# Strip what a sandbox never needs: package caches and lists, docs, locales.
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/usr/share/locale/* "$root"/var/log/* "$root"/tmp/* \
       "$root"/var/cache/debconf/*-old "$root"/debootstrap
# Device nodes and /proc, /sys are provided by the container runtime.
rm -rf "$root"/dev/* "$root"/proc/* "$root"/sys/* 2>/dev/null || true

tmp_out="$out.partial"
tar --numeric-owner -C "$root" -cf "$tmp_out" .
mv "$tmp_out" "$out"
echo "$out"
