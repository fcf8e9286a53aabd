"""DaemonConfig: defaults, TOML < env < flags, validation messages."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from executor.daemon import config as cfgmod
from executor.daemon.config import DaemonConfig
from executor.daemon.errors import ConfigError

TOKEN_A = "a" * 24
TOKEN_B = "b" * 24


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cfgmod.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_are_safe():
    cfg = DaemonConfig()
    assert cfg.listen == "127.0.0.1:50051"
    assert not cfg.auth_enabled and not cfg.tls_enabled
    assert cfg.metrics_address == "127.0.0.1:9464"
    assert cfg.default_limits.wall_time_ms == 10_000
    assert cfg.max_limits.wall_time_ms >= cfg.default_limits.wall_time_ms


def test_precedence_toml_env_flags(tmp_path: Path):
    toml = tmp_path / "corral.toml"
    toml.write_text(
        'pool_warm = 3\npool_max = 9\nlog_format = "json"\n'
        "[default_limits]\nwall_time_ms = 4000\n"
        "[max_limits]\nwall_time_ms = 8000\n"
        f'[tokens]\nalice = "{TOKEN_A}"\n'
    )
    env = {"CORRAL_POOL_WARM": "5", "CORRAL_MAX_WALL_TIME_MS": "9000", "CORRAL_CONFIG": str(toml)}
    args = parse(["--pool-warm", "7", "--token", f"bob={TOKEN_B}"])
    cfg = cfgmod.load(args, env=env)
    assert cfg.pool_warm == 7  # flag beats env beats TOML
    assert cfg.pool_max == 9  # TOML only
    assert cfg.max_limits.wall_time_ms == 9000  # env beats TOML
    assert cfg.default_limits.wall_time_ms == 4000
    assert cfg.log_format == "json"
    assert dict(cfg.tokens) == {"bob": TOKEN_B}  # flags replace the whole token set


def test_env_tokens_and_bare_token():
    cfg = cfgmod.load(None, env={"CORRAL_TOKENS": f"alice={TOKEN_A},{TOKEN_B}"})
    assert dict(cfg.tokens) == {"alice": TOKEN_A, "default": TOKEN_B}
    assert cfg.auth_enabled


def test_every_field_has_a_flag_and_env_var():
    parser = argparse.ArgumentParser()
    cfgmod.add_arguments(parser)
    dests = {a.dest for a in parser._actions}
    for key in cfgmod.FLAT_KEYS:
        assert key in dests, key
        env = cfgmod.from_env({f"CORRAL_{key.upper()}": "1"})
        assert key in env


def test_self_check_flag_negates():
    assert cfgmod.load(parse(["--no-self-check"]), env={}).self_check is False
    assert cfgmod.load(parse([]), env={"CORRAL_SELF_CHECK": "false"}).self_check is False


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pool_warm": 5, "pool_max": 2}, "pool_warm=5 exceeds pool_max=2"),
        (
            {"default_wall_time_ms": 9000, "max_wall_time_ms": 100},
            "default_wall_time_ms=9000 exceeds max_wall_time_ms=100",
        ),
        ({"tokens": {"alice": "short"}}, "use at least 16"),
        ({"tls_cert": "/x.pem"}, "tls_cert and tls_key must be set together"),
        ({"log_format": "xml"}, "log_format='xml'"),
        ({"listen": "nowhere"}, "HOST:PORT or unix:/path"),
        ({"max_file_bytes": 64 << 20}, "does not fit a container frame"),
        ({"bogus": 1}, "unknown config key(s): bogus"),
        ({"pool_warm": "many"}, "config key pool_warm"),
        ({"listen": "0.0.0.0:50051"}, "no token is configured"),
        ({"listen": "192.0.2.7:50051"}, "no token is configured"),
    ],
)
def test_invalid_configs_name_the_key(changes, message):
    with pytest.raises(ConfigError) as err:
        DaemonConfig().replace(**changes)
    assert message in str(err.value)


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "localhost:50051", "[::1]:50051", "unix:/tmp/c"])
def test_local_listeners_need_no_token(listen):
    assert DaemonConfig().replace(listen=listen).listen == listen


def test_network_listener_with_a_token_needs_tls():
    with pytest.raises(ConfigError, match="without TLS: the bearer tokens would cross"):
        DaemonConfig().replace(listen="0.0.0.0:50051", tokens={"alice": TOKEN_A})
    cfg = DaemonConfig().replace(
        listen="0.0.0.0:50051", tokens={"alice": TOKEN_A}, tls_cert="c.pem", tls_key="k.pem"
    )
    assert cfg.auth_enabled and cfg.tls_enabled
    unsafe = DaemonConfig().replace(
        listen="0.0.0.0:50051", tokens={"alice": TOKEN_A}, allow_insecure_remote=True
    )
    assert unsafe.allow_insecure_remote


@pytest.mark.parametrize("address", ["0.0.0.0:9464", "10.1.2.3:9464", "[::]:9464"])
def test_metrics_beyond_loopback_is_refused(address):
    with pytest.raises(ConfigError, match=r"metrics_address=.* reaches beyond this machine"):
        DaemonConfig().replace(metrics_address=address)
    assert DaemonConfig().replace(metrics_address=address, allow_insecure_remote=True)


@pytest.mark.parametrize("address", ["127.0.0.1:9464", "[::1]:0", "localhost:1", "0", "off"])
def test_metrics_on_loopback_or_off_is_fine(address):
    assert DaemonConfig().replace(metrics_address=address).metrics_address == address


def test_default_workspace_must_fit_in_default_memory():
    with pytest.raises(ConfigError, match=r"default_workspace_bytes=.* does not fit"):
        DaemonConfig().replace(default_memory_bytes=64 << 20, default_workspace_bytes=32 << 20)


def test_every_key_is_documented_with_unit_type_and_default():
    for key in cfgmod.FLAT_KEYS:
        doc = cfgmod.describe(key)
        assert doc.help and doc.help != "(undocumented)", key
        assert doc.type, key
        line = cfgmod.help_line(key)
        assert "default " in line and f"env {cfgmod.ENV_PREFIX}{key.upper()}" in line, line
    assert "[ms; int; default 10000;" in cfgmod.help_line("default_wall_time_ms")
    assert "[bytes; int; default 8388608;" in cfgmod.help_line("max_file_bytes")
    assert "[containers; int; default 4;" in cfgmod.help_line("pool_warm")


def test_serve_help_shows_meaning_unit_default_and_env(capsys):
    from executor.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    out = capsys.readouterr().out
    assert "containers kept started and ready" in out
    assert "CORRAL_POOL_WARM" in out and "default 4" in out
    assert "maximum session limits" in out


def test_bad_toml_names_the_file(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("pool_warm = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        cfgmod.load(None, env={}, config_path=str(bad))
