"""Fleet tests need nginx (Debian's package); under CI it must be there."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import IN_CI


@pytest.fixture(scope="session")
def nginx_bin() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if shutil.which("/usr/sbin/nginx") else None)
    if path is None:
        if IN_CI:
            pytest.fail("nginx is required under CI (.ci/run installs it) and is not installed")
        pytest.skip("nginx not installed (apt-get install nginx-light)")
    return path


def self_signed(directory, name: str = "tls"):  # type: ignore[no-untyped-def]
    """A throwaway certificate and key for nginx configuration tests."""
    import subprocess

    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
