"""Log-line safety, TLS configuration errors and the client's error classes (no Docker)."""

from __future__ import annotations

import json
import logging
import re

import grpc
import pytest

from agent import errors as client_errors
from executor.daemon import errors as daemon_errors
from executor.daemon import logs
from executor.daemon.errors import ConfigError
from executor.daemon.server import _tls_credentials


@pytest.mark.parametrize("fmt", ["keyvalue", "json"])
@pytest.mark.parametrize(
    "hostile",
    ["a\nts=x level=error msg=forged", "b\r\nlevel=error", "c\u2028level=error", "d\x1b[2J"],
)
def test_client_text_cannot_forge_or_split_a_log_line(fmt, hostile):
    formatter = logs.JsonFormatter() if fmt == "json" else logs.KeyValueFormatter()
    record = logging.makeLogRecord(
        {
            "name": "corral.daemon.service",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": f"session opened {hostile}",
            f"label_{hostile}": hostile,
            "path": hostile,
        }
    )
    line = formatter.format(record)
    assert "\n" not in line and "\r" not in line and "\u2028" not in line and "\x1b" not in line
    if fmt == "keyvalue":
        unquoted = re.sub(r'"(?:\\.|[^"\\])*"', '""', line)
        assert unquoted.count("level=") == 1, unquoted  # only the real one
    else:
        assert json.loads(line)["level"] == "info"


def test_safe_key_keeps_plain_keys_and_escapes_the_rest():
    assert logs.safe_key("label_team-a.b") == "label_team-a.b"
    assert logs.safe_key("label_x y=z") == "label_x\\u0020y\\u003dz"


def test_a_bad_tls_certificate_says_so(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    key.write_text("garbage")
    with pytest.raises(ConfigError) as err:
        _tls_credentials(str(cert), str(key))
    assert "not a PEM certificate chain and its matching private key" in str(err.value)
    assert "another daemon" not in str(err.value)
    with pytest.raises(ConfigError, match="cannot read tls_cert/tls_key"):
        _tls_credentials(str(tmp_path / "missing.pem"), str(key))


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "detail"


# Statuses gRPC itself sends on the daemon's behalf (deadline, cancel, unknown
# method, concurrency cap, message cap).
_GRPC_OWN = (
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)


def test_every_status_the_daemon_sends_has_a_client_class():
    sent = {code for _, code in daemon_errors._STATUS} | set(_GRPC_OWN)
    sent.add(daemon_errors.grpc_status(RuntimeError()))
    for code in sent:
        err = client_errors.from_rpc_error(_FakeRpcError(code))
        assert type(err) is not client_errors.CorralError, f"no client class for {code.name}"
        assert err.code is code


def test_session_lost_is_aborted_on_both_sides():
    assert daemon_errors.grpc_status(daemon_errors.SessionLost("x")) is grpc.StatusCode.ABORTED
    err = client_errors.from_rpc_error(_FakeRpcError(grpc.StatusCode.ABORTED))
    assert isinstance(err, client_errors.SessionLost)
