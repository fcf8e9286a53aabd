"""`corrald fleet nginx-config`: what it renders passes `nginx -t`, with and without TLS,
and bad daemon addresses are refused with the reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from executor.fleet import Backend, ProxyConfig, render_nginx
from proto.routing import ROUTE_METADATA
from tests.fleet.conftest import self_signed

ROOT = Path(__file__).resolve().parents[2]


def _nginx_t(nginx_bin: str, conf: Path, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [nginx_bin, "-t", "-c", str(conf), "-p", str(state), "-e", str(state / "err.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "tls"])
def test_cli_renders_a_config_nginx_accepts(nginx_bin: str, tmp_path: Path, tls: bool) -> None:
    conf = tmp_path / "nginx.conf"
    args = [
        sys.executable,
        "-m",
        "executor.cli",
        "fleet",
        "nginx-config",
        "--daemon=127.0.0.1:50061",
        "--daemon=127.0.0.1:50062",
        "--daemon=[::1]:50063",
        "--listen=127.0.0.1:50060",
        f"--state-dir={tmp_path}",
        f"--output={conf}",
    ]
    if tls:
        cert, key = self_signed(tmp_path)
        args += [f"--tls-cert={cert}", f"--tls-key={key}"]
    subprocess.run(args, cwd=ROOT, check=True, timeout=60)
    text = conf.read_text()
    assert f"$http_{ROUTE_METADATA.replace('-', '_')}" in text
    for address in ("127.0.0.1:50061", "127.0.0.1:50062", "[::1]:50063"):
        assert f'"{address}" {address};' in text  # an explicit route per daemon
        assert f"server {address} " in text  # and a member of the balanced group
    assert ("ssl http2" in text) is tls
    proc = _nginx_t(nginx_bin, conf, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "syntax is ok" in proc.stderr


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "bad host:1", "a;b:1", ":1"]
)
def test_bad_daemon_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError, match="daemon"):
        Backend.parse(address)


def test_cli_reports_a_bad_address_and_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "executor.cli", "fleet", "nginx-config", "--daemon=nowhere"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "HOST:PORT" in proc.stderr


def test_a_fleet_needs_a_daemon(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one daemon"):
        render_nginx(ProxyConfig(listen="127.0.0.1:1", daemons=(), state_dir=tmp_path))
