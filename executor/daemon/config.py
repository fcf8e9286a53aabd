"""`DaemonConfig`: the one configuration object threaded through the daemon.

Sources, lowest to highest precedence: the dataclass defaults, a TOML file
(`--config PATH` or `CORRAL_CONFIG`), `CORRAL_`-prefixed environment variables,
then command-line flags. Every field has exactly one flat key, and the same key
names the flag (`--pool-warm`), the environment variable (`CORRAL_POOL_WARM`)
and the TOML entry (`pool_warm = 4`). Limits are two `SessionLimits`: the
defaults a session gets and the maximums a client may ask for; their keys are
`default_<field>` / `max_<field>` (TOML: `[default_limits]` and `[max_limits]`
tables); `max_code_bytes` is also the daemon's hard cap on a snippet's size.
Tokens map a caller name to a bearer secret (TOML: `[tokens]`; env and flags:
`NAME=SECRET`, comma-separated in env; a bare `SECRET` is named "default"). No tokens means auth is off and every caller is "anonymous".
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from executor.daemon.errors import ConfigError
from proto.frames import DEFAULT_MAX_FRAME
from proto.limits import (
    LIMIT_FIELDS,
    LIMIT_MINIMUMS,
    MAX_ARTIFACT_BYTES_CEILING,
    MiB,
    SessionLimits,
)
from proto.routing import check_route

ENV_PREFIX = "CORRAL_"
MIN_TOKEN_CHARS = 16
LOG_FORMATS = ("keyvalue", "json")

# Generous ceilings; an operator lowers or raises them per deployment.
DEFAULT_MAX_LIMITS = SessionLimits(
    wall_time_ms=300_000,
    cpu_time_ms=300_000,
    memory_bytes=2048 * MiB,
    pids=256,
    output_bytes=8 * MiB,
    workspace_bytes=1024 * MiB,
    idle_timeout_s=3600,
    lifetime_s=86_400,
    code_bytes=1 * MiB,
    cpu_millis=2000,
    tool_timeout_ms=300_000,
    max_checkpoints=64,
    max_artifact_bytes=12 * MiB,  # MAX_ARTIFACT_BYTES_CEILING: one frame, base64
    max_artifacts=256,
)


@dataclass(frozen=True)
class DaemonConfig:
    """Everything `corrald serve` can be told. Units are in the field names."""

    # host:port (IPv4/IPv6) or unix:/path. Loopback by default: never exposed by accident.
    listen: str = "127.0.0.1:50051"
    # caller name -> bearer secret; empty = no auth, one anonymous caller.
    tokens: Mapping[str, str] = field(default_factory=dict)
    tls_cert: str = ""  # PEM path; TLS is on when both cert and key are set
    tls_key: str = ""
    image: str = ""  # sandbox image tag; empty = ensure_image() (build when missing)
    instance_id: str = ""  # label on this daemon's containers; empty = random per start
    advertise_address: str = ""  # host:port a proxy reaches us at (session route); ""=instance_id
    pool_warm: int = 4  # containers kept started and ready
    pool_max: int = 16  # containers in total (warm + starting + in use)
    pool_warm_max: int = 0  # warm ceiling under demand; 0 = max(pool_warm, pool_max / 2)
    refill_concurrency: int = 8  # containers started at once; `benchmarks/churn.py --starts`
    open_wait_s: float = 10.0  # how long OpenSession waits for a container
    min_available_memory_bytes: int = 256 * MiB  # no new container below this host memory
    health_check_interval_s: float = 15.0  # ping idle warm containers this often
    container_ready_timeout_s: float = 30.0  # container start until the runner is ready
    default_limits: SessionLimits = field(default_factory=SessionLimits)
    max_limits: SessionLimits = DEFAULT_MAX_LIMITS
    hard_timeout_grace_ms: int = 2000  # after wall_time_ms + this, the container is killed
    max_message_bytes: int = 16 * MiB  # gRPC receive/send message cap
    max_file_bytes: int = 8 * MiB  # UploadFile / DownloadFile cap
    metrics_address: str = "127.0.0.1:9464"  # Prometheus text endpoint; "0" = off
    shutdown_drain_s: float = 10.0  # running snippets may finish for this long on SIGTERM
    session_reap_interval_s: float = 1.0  # how often idle/lifetime expiry is checked
    log_level: str = "INFO"
    log_format: str = "keyvalue"  # "keyvalue" or "json"
    self_check: bool = True  # `serve` runs the doctor's confinement check first
    runtime: str = "auto"  # "auto" (runsc when registered, else runc), "runc" or "runsc" (gVisor)

    def replace(self, **changes: Any) -> DaemonConfig:
        """A validated copy with some fields changed (flat limit keys accepted)."""
        return from_flat({**to_flat(self), **changes})

    @property
    def auth_enabled(self) -> bool:
        return bool(self.tokens)

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert and self.tls_key)


# --- flat keys ---------------------------------------------------------------

_SCALARS = tuple(f for f in fields(DaemonConfig) if f.name not in ("default_limits", "max_limits"))
_LIMIT_KEYS = tuple(f"default_{n}" for n in LIMIT_FIELDS) + tuple(f"max_{n}" for n in LIMIT_FIELDS)


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r} (use true/false)")


def parse_tokens(items: str | list[str] | Mapping[str, str]) -> dict[str, str]:
    """`NAME=SECRET` items (a list, or one comma-separated string) -> {name: secret}."""
    if isinstance(items, Mapping):
        return {str(k): str(v) for k, v in items.items()}
    if isinstance(items, str):
        items = [p for p in items.split(",") if p.strip()]
    out: dict[str, str] = {}
    for item in items:
        name, sep, secret = item.strip().partition("=")
        if not sep:
            name, secret = "default", name
        out[name.strip()] = secret.strip()
    return out


def _limit_value(raw: Any) -> int:
    """A limit from TOML (an int) or a flag/env (digits): never a float, bool or "1.5"."""
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError(f"must be a whole number, got {type(raw).__name__} {raw!r}")
    return raw


def _converter(key: str) -> Callable[[Any], Any]:
    if key in _LIMIT_KEYS:
        return _limit_value
    f = next(f for f in _SCALARS if f.name == key)
    if f.name == "tokens":
        return parse_tokens
    default = f.default
    if isinstance(default, bool):
        return lambda v: v if isinstance(v, bool) else _parse_bool(str(v))
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    return str


FLAT_KEYS: tuple[str, ...] = tuple(f.name for f in _SCALARS) + _LIMIT_KEYS


def to_flat(cfg: DaemonConfig) -> dict[str, Any]:
    """Every field under its flat key (limits expanded)."""
    flat: dict[str, Any] = {f.name: getattr(cfg, f.name) for f in _SCALARS}
    for n in LIMIT_FIELDS:
        flat[f"default_{n}"] = getattr(cfg.default_limits, n)
        flat[f"max_{n}"] = getattr(cfg.max_limits, n)
    return flat


def from_flat(flat: Mapping[str, Any]) -> DaemonConfig:
    """Build and validate a config from flat keys; unknown keys are an error."""
    unknown = sorted(set(flat) - set(FLAT_KEYS))
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for key, raw in flat.items():
        try:
            values[key] = _converter(key)(raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config key {key}: {exc}") from exc
    base = DaemonConfig()
    defaults = dataclasses.replace(
        base.default_limits,
        **{n: values.pop(f"default_{n}") for n in LIMIT_FIELDS if f"default_{n}" in values},
    )
    maxima = dataclasses.replace(
        base.max_limits,
        **{n: values.pop(f"max_{n}") for n in LIMIT_FIELDS if f"max_{n}" in values},
    )
    cfg = DaemonConfig(**values, default_limits=defaults, max_limits=maxima)
    validate(cfg)
    return cfg


# --- sources -----------------------------------------------------------------


def from_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Flat keys from a TOML file; `[default_limits]`, `[max_limits]`, `[tokens]` tables."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("default_limits", "max_limits") and isinstance(value, dict):
            prefix = key.split("_")[0]
            for name, v in value.items():
                flat[f"{prefix}_{name}"] = v
        else:
            flat[key] = value
    return flat


def from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Flat keys from `CORRAL_<KEY>` variables (CORRAL_CONFIG names the TOML file)."""
    flat: dict[str, Any] = {}
    for key in FLAT_KEYS:
        name = ENV_PREFIX + key.upper()
        if name in env:
            flat[key] = env[name]
    return flat


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per flat key (`--pool-warm`, `--max-wall-time-ms`, `--token NAME=SECRET`)."""
    parser.add_argument(
        "--config", metavar="PATH", help=f"TOML config file (env {ENV_PREFIX}CONFIG)"
    )
    for key in FLAT_KEYS:
        flag = "--" + key.replace("_", "-")
        env = ENV_PREFIX + key.upper()
        if key == "tokens":
            parser.add_argument(
                "--token",
                dest="tokens",
                action="append",
                metavar="NAME=SECRET",
                help=f"bearer token for caller NAME, repeatable (env {env}=a=s1,b=s2)",
            )
        elif key == "self_check":
            parser.add_argument(
                "--self-check",
                dest=key,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"run the confinement self-check before serving (env {env})",
            )
        else:
            parser.add_argument(flag, dest=key, default=None, metavar="V", help=f"env {env}")


def load(
    args: argparse.Namespace | None = None,
    env: Mapping[str, str] | None = None,
    config_path: str | None = None,
) -> DaemonConfig:
    """Defaults < TOML < environment < flags."""
    env = os.environ if env is None else env
    flat: dict[str, Any] = {}
    path = (
        config_path
        or (getattr(args, "config", None) if args else None)
        or env.get(ENV_PREFIX + "CONFIG")
    )
    if path:
        flat.update(from_toml(path))
    flat.update(from_env(env))
    if args is not None:
        for key in FLAT_KEYS:
            value = getattr(args, key, None)
            if value is not None:
                flat[key] = value
    return from_flat(flat)


# --- validation --------------------------------------------------------------


def validate(cfg: DaemonConfig) -> None:
    """Refuse configs that cannot work, naming the key to fix."""
    problems: list[str] = []
    if not (cfg.listen.startswith("unix:") or ":" in cfg.listen):
        problems.append(f"listen={cfg.listen!r}: use HOST:PORT or unix:/path")
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        problems.append("tls_cert and tls_key must be set together")
    for name, secret in cfg.tokens.items():
        if not name:
            problems.append("a token has an empty caller name (use NAME=SECRET)")
        if len(secret) < MIN_TOKEN_CHARS:
            problems.append(
                f"token for caller {name!r} is {len(secret)} characters; use at least "
                f"{MIN_TOKEN_CHARS} (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
    if cfg.pool_warm < 0 or cfg.pool_max < 1:
        problems.append("pool_warm must be >= 0 and pool_max >= 1")
    if cfg.pool_warm > cfg.pool_max:
        problems.append(f"pool_warm={cfg.pool_warm} exceeds pool_max={cfg.pool_max}")
    if cfg.pool_warm_max < 0 or cfg.pool_warm_max > cfg.pool_max:
        problems.append(f"pool_warm_max={cfg.pool_warm_max}: use 0 (auto) up to pool_max")
    elif cfg.pool_warm_max and cfg.pool_warm_max < cfg.pool_warm:
        problems.append(f"pool_warm_max={cfg.pool_warm_max} is below pool_warm={cfg.pool_warm}")
    if cfg.refill_concurrency < 1:
        problems.append("refill_concurrency must be >= 1")
    for n in LIMIT_FIELDS:
        d, m = getattr(cfg.default_limits, n), getattr(cfg.max_limits, n)
        if d <= 0 or m <= 0:
            problems.append(f"default_{n} and max_{n} must be positive")
        elif d > m:
            problems.append(f"default_{n}={d} exceeds max_{n}={m}")
        elif d < LIMIT_MINIMUMS[n]:
            problems.append(f"default_{n}={d} is below the minimum of {LIMIT_MINIMUMS[n]}")
    if cfg.max_limits.max_artifact_bytes > MAX_ARTIFACT_BYTES_CEILING:
        problems.append(
            f"max_max_artifact_bytes={cfg.max_limits.max_artifact_bytes} does not fit a "
            f"container frame once base64-encoded; use at most {MAX_ARTIFACT_BYTES_CEILING}"
        )
    if cfg.max_limits.max_artifact_bytes + 4096 > cfg.max_message_bytes:
        problems.append("max_message_bytes must exceed max_max_artifact_bytes by at least 4096")
    # A file crosses the container channel base64-encoded inside one frame.
    if cfg.max_file_bytes * 4 // 3 + 4096 > DEFAULT_MAX_FRAME:
        problems.append(
            f"max_file_bytes={cfg.max_file_bytes} does not fit a container frame once "
            f"base64-encoded; use at most {(DEFAULT_MAX_FRAME - 4096) * 3 // 4}"
        )
    if cfg.max_file_bytes + 4096 > cfg.max_message_bytes:
        problems.append("max_message_bytes must exceed max_file_bytes by at least 4096")
    if cfg.max_limits.code_bytes + 4096 > cfg.max_message_bytes:
        problems.append("max_message_bytes must exceed max_code_bytes by at least 4096")
    try:  # session ids start with the route: advertise_address, else the instance id
        if cfg.advertise_address or cfg.instance_id:
            check_route(cfg.advertise_address or cfg.instance_id)
    except ValueError as exc:
        key = "advertise_address" if cfg.advertise_address else "instance_id (the default route)"
        problems.append(f"{key}: {exc}")
    if cfg.log_format not in LOG_FORMATS:
        problems.append(f"log_format={cfg.log_format!r}: use one of {', '.join(LOG_FORMATS)}")
    if cfg.hard_timeout_grace_ms < 0 or cfg.open_wait_s < 0 or cfg.shutdown_drain_s < 0:
        problems.append("hard_timeout_grace_ms, open_wait_s and shutdown_drain_s must be >= 0")
    if not cfg.tokens and not _is_local_listen(cfg.listen):
        problems.append(
            f"listen={cfg.listen!r} reaches beyond this machine but no token is configured: "
            "anyone who can connect could run code; add --token NAME=SECRET (and TLS), "
            "or listen on 127.0.0.1:PORT or unix:/path"
        )
    problems.extend(_runtime_problems(cfg))
    if problems:
        raise ConfigError("invalid daemon config: " + "; ".join(problems))


def _runtime_problems(cfg: DaemonConfig) -> list[str]:
    from executor.sandbox.runtimes import RUNSC, RUNTIME_SETTINGS, RuntimeSetupError, check_limits

    if cfg.runtime not in RUNTIME_SETTINGS:
        return [f"runtime={cfg.runtime!r}: use one of {', '.join(RUNTIME_SETTINGS)}"]
    if cfg.runtime != RUNSC:
        return []  # under auto the engine decides; the daemon checks again at start
    try:
        check_limits(RUNSC, cfg.default_limits.pids)
    except RuntimeSetupError as exc:
        return [str(exc)]
    return []


def _is_local_listen(listen: str) -> bool:
    """True for unix sockets and loopback addresses (what needs no token)."""
    if listen.startswith("unix:"):
        return True
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
