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
`NAME=SECRET`, comma-separated in env; a bare `SECRET` is named "default").
No tokens means auth is off and every caller is "anonymous".

Every key is declared once, as a `setting(...)` field of `DaemonConfig` that
carries its meaning, unit and type (limit keys: `LIMIT_HELP` and the unit in
their name); `corrald serve --help`, the environment variables and the TOML
keys are all generated from that table (`help_line`).
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
    WORKSPACE_MEMORY_HEADROOM,
    MiB,
    SessionLimits,
    limit_unit,
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

# Meaning of each session limit, for the default_<name> / max_<name> keys (the
# unit comes from the name: proto.limits.limit_unit). proto/executor.proto's
# `Limits` message says the same for clients.
LIMIT_HELP: dict[str, str] = {
    "wall_time_ms": "wall-clock time per snippet (then TIMEOUT, state kept)",
    "cpu_time_ms": "CPU time per snippet (then CPU_LIMIT)",
    "memory_bytes": "memory of a session's container, workspace files included (no swap)",
    "pids": "processes and threads in a session's container",
    "output_bytes": "printed output kept per snippet (more is cut, truncated set)",
    "workspace_bytes": "size of a session's /workspace (tmpfs, counted in its memory)",
    "idle_timeout_s": "a session with no call for this long is closed",
    "lifetime_s": "a session is closed this long after it was opened",
    "code_bytes": "snippet size (max_code_bytes is also the daemon's hard cap)",
    "cpu_millis": "CPU share of a session's container, thousandths of a CPU",
    "tool_timeout_ms": "how long a tool call waits for the client's answer",
    "max_checkpoints": "checkpoints a session may hold at once (each a stopped process)",
    "tool_time_budget_ms": "tool time per snippet not charged to its wall clock (then "
    "TIMEOUT, session lost)",
    "max_artifact_bytes": "largest figure or image a snippet returns (encoded)",
    "max_artifacts": "figures and images returned per snippet",
}
assert set(LIMIT_HELP) == set(LIMIT_FIELDS), "every limit key is documented"


@dataclass(frozen=True)
class Doc:
    """What `--help` says about one key: its meaning, unit and value type."""

    help: str
    unit: str = ""
    type: str = ""  # shown type; empty = from the default's Python type
    metavar: str = ""


def setting(default: Any = None, help: str = "", unit: str = "", **kw: Any) -> Any:
    """A DaemonConfig field with its documentation (the one table of keys).

    `factory=` for mutable defaults; `type=` and `metavar=` override what
    `--help` shows.
    """
    doc = Doc(help, unit, kw.pop("type", ""), kw.pop("metavar", ""))
    factory = kw.pop("factory", None)
    if kw:
        raise TypeError(f"unknown setting() options: {sorted(kw)}")
    if factory is not None:
        return field(default_factory=factory, metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class DaemonConfig:
    """Everything `corrald serve` can be told: one documented field per key.

    This class is the table behind `--help`, the environment variables and
    the TOML keys; add a key by adding a field with `setting(...)`.
    """

    # --- network and access ---
    listen: str = setting(
        "127.0.0.1:50051",
        "address the gRPC API listens on: HOST:PORT (IPv4, [IPv6]) or unix:/path; "
        "port 0 picks a free port (see ready_file). Beyond loopback it needs tokens and TLS",
        metavar="ADDR",
    )
    tokens: Mapping[str, str] = setting(
        help="bearer tokens: caller name -> secret (at least 16 characters each); sessions "
        "belong to the caller whose token opened them. None = no auth, loopback only",
        type="NAME=SECRET, repeatable",
        factory=dict,
    )
    admin_callers: tuple[str, ...] = setting(
        (),
        "callers (token names) whose GetStats shows the daemon-wide pool and container "
        "counters; every other caller sees only its own sessions and snippets",
        type="comma-separated names",
    )
    tls_cert: str = setting(
        "", "TLS certificate chain, PEM file; TLS is on when cert and key are set", metavar="PATH"
    )
    tls_key: str = setting("", "TLS private key, PEM file", metavar="PATH")
    allow_insecure_remote: bool = setting(
        False,
        "UNSAFE: allow listen or metrics_address beyond loopback without TLS (tokens and "
        "metrics then cross the network in clear); only behind a TLS-terminating proxy "
        "on a trusted network",
    )
    max_concurrent_rpcs: int = setting(
        256,
        "calls handled at once, all connections together; more get RESOURCE_EXHAUSTED",
        "calls",
    )
    max_streams_per_connection: int = setting(
        64, "HTTP/2 streams (calls) one connection may have open at once", "streams"
    )
    max_message_bytes: int = setting(
        4 * MiB,
        "largest gRPC message received or sent (files travel in 256 KiB chunks and are "
        "bounded by max_file_bytes instead); bounds code, variables and results",
        "bytes",
    )
    max_file_bytes: int = setting(8 * MiB, "largest file uploaded or downloaded", "bytes")
    # --- sandbox image and pool ---
    image: str = setting(
        "", "sandbox image tag; empty = build or reuse the image of this version", metavar="TAG"
    )
    instance_id: str = setting(
        "", "label put on this daemon's containers; empty = random per start", metavar="ID"
    )
    advertise_address: str = setting(
        "",
        "HOST:PORT a proxy reaches this daemon at; session ids start with it (the route). "
        "Empty = the instance id",
        metavar="ADDR",
    )
    pool_warm: int = setting(4, "containers kept started and ready for new sessions", "containers")
    pool_max: int = setting(16, "containers in total: warm + starting + in use", "containers")
    pool_warm_max: int = setting(
        0,
        "warm ceiling while demand is high; 0 = max(pool_warm, pool_max / 2)",
        "containers",
    )
    refill_concurrency: int = setting(
        8,
        "containers started at the same time (measure with benchmarks/churn.py --starts)",
        "containers",
    )
    open_wait_s: float = setting(
        10.0, "how long OpenSession waits for a container before RESOURCE_EXHAUSTED", "seconds"
    )
    min_available_memory_bytes: int = setting(
        256 * MiB,
        "no new container is started while host available memory is below this",
        "bytes",
    )
    health_check_interval_s: float = setting(
        15.0, "idle warm containers are pinged this often", "seconds"
    )
    container_ready_timeout_s: float = setting(
        30.0,
        "container start until the runner answers; slower starts count as failed",
        "seconds",
    )
    # --- limits (see default_* / max_* below) ---
    default_limits: SessionLimits = field(default_factory=SessionLimits)
    max_limits: SessionLimits = DEFAULT_MAX_LIMITS
    hard_timeout_grace_ms: int = setting(
        2000,
        "after a snippet's wall_time_ms plus this without an answer, its container is "
        "killed (TIMEOUT, session lost)",
        "ms",
    )
    # --- operations ---
    metrics_address: str = setting(
        "127.0.0.1:9464",
        "Prometheus text endpoint HOST:PORT; 0 = off. Loopback only unless allow_insecure_remote",
        metavar="ADDR",
    )
    ready_file: str = setting(
        "",
        "once serving, write a JSON file here with the bound address, port, metrics port, "
        "instance id and pid (for launchers using port 0); removed on shutdown",
        metavar="PATH",
    )
    shutdown_drain_s: float = setting(
        10.0, "on SIGTERM, running snippets may finish for this long", "seconds"
    )
    session_reap_interval_s: float = setting(
        1.0, "how often idle and lifetime expiry of sessions is checked", "seconds"
    )
    log_level: str = setting("INFO", "DEBUG, INFO, WARNING or ERROR", metavar="LEVEL")
    log_format: str = setting("keyvalue", "log line format: keyvalue or json", metavar="FORMAT")
    runtime: str = setting(
        "auto",
        "container runtime: auto (runsc when registered, else runc), runc, or runsc (gVisor)",
        metavar="RUNTIME",
    )
    self_check: bool = setting(
        True,
        "`serve` first runs the doctor's container confinement check and refuses to "
        "serve if it fails",
    )

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


def _parse_names(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(v).strip() for v in items if str(v).strip())


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
    if isinstance(default, tuple):
        return _parse_names
    return str


def describe(key: str) -> Doc:
    """The documentation of a flat key: meaning, unit, type (and the default via `default`)."""
    if key in _LIMIT_KEYS:
        kind, _, name = key.partition("_")
        what = (
            "default for sessions that ask for 0"
            if kind == "default"
            else ("most a session may ask for")
        )
        return Doc(f"{LIMIT_HELP.get(name, name)}; {what}", limit_unit(name), "int")
    f = next(f for f in _SCALARS if f.name == key)
    doc = f.metadata.get("doc") or Doc("(undocumented)")
    if not doc.type:
        default = DaemonConfig().__getattribute__(key)
        shown = type(default).__name__
        doc = Doc(
            doc.help, doc.unit, {"str": "text", "bool": "true/false"}.get(shown, shown), doc.metavar
        )
    return doc


def default_text(key: str) -> str:
    value = to_flat(DaemonConfig())[key]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | tuple):
        return "none" if not value else ",".join(map(str, value))
    if value == "":
        return '""'
    return str(value)


def help_line(key: str) -> str:
    """`--help` text of a key: meaning; unit; type; default; env; TOML."""
    doc = describe(key)
    env = ENV_PREFIX + key.upper()
    if key in _LIMIT_KEYS:
        table, _, name = key.partition("_")
        toml = f"[{table}_limits] {name}"
    elif key == "tokens":
        toml = "[tokens] NAME = SECRET"
        env = f"{env}=NAME=SECRET,..."
    else:
        toml = key
    unit = f"{doc.unit}; " if doc.unit else ""
    return f"{doc.help}. [{unit}{doc.type}; default {default_text(key)}; env {env}; TOML {toml}]"


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
    """One flag per flat key (`--pool-warm`, `--max-wall-time-ms`, `--token NAME=SECRET`).

    Every flag's help is `help_line(key)`: meaning, unit, type, default, the
    environment variable and the TOML key, all from the DaemonConfig table.
    """
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"TOML config file; its keys are the flag names with _ (env {ENV_PREFIX}CONFIG)",
    )
    groups = {
        "scalars": parser.add_argument_group("daemon settings"),
        "default": parser.add_argument_group(
            "default session limits (a session asking for 0 gets these)"
        ),
        "max": parser.add_argument_group("maximum session limits (a session may ask up to these)"),
    }
    for key in FLAT_KEYS:
        flag = "--" + key.replace("_", "-")
        text = help_line(key).replace("%", "%%")
        if key in _LIMIT_KEYS:
            group = groups[key.partition("_")[0]]
        else:
            group = groups["scalars"]
        doc = describe(key)
        if key == "tokens":
            group.add_argument(
                "--token", dest="tokens", action="append", metavar="NAME=SECRET", help=text
            )
        elif doc.type == "true/false":
            group.add_argument(
                flag, dest=key, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            metavar = doc.metavar or ("N" if doc.type in ("int", "float") else "VALUE")
            group.add_argument(flag, dest=key, default=None, metavar=metavar, help=text)


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
            problems.append(
                f"default_{n}={d} is below the minimum of {LIMIT_MINIMUMS[n]} {limit_unit(n)}"
            )
    if cfg.max_limits.max_artifact_bytes > MAX_ARTIFACT_BYTES_CEILING:
        problems.append(
            f"max_max_artifact_bytes={cfg.max_limits.max_artifact_bytes} does not fit a "
            f"container frame once base64-encoded; use at most {MAX_ARTIFACT_BYTES_CEILING}"
        )
    # Artifacts travel daemon -> client: bounded by the send cap (a container frame,
    # server_options), not by max_message_bytes, which caps what the daemon receives.
    # A file crosses the container channel base64-encoded inside one frame.
    if cfg.max_file_bytes * 4 // 3 + 4096 > DEFAULT_MAX_FRAME:
        problems.append(
            f"max_file_bytes={cfg.max_file_bytes} does not fit a container frame once "
            f"base64-encoded; use at most {(DEFAULT_MAX_FRAME - 4096) * 3 // 4}"
        )
    if cfg.max_message_bytes < 64 << 10:
        problems.append("max_message_bytes must be at least 65536")
    if cfg.max_concurrent_rpcs < 1 or cfg.max_streams_per_connection < 1:
        problems.append("max_concurrent_rpcs and max_streams_per_connection must be >= 1")
    room = cfg.default_limits.memory_bytes - WORKSPACE_MEMORY_HEADROOM
    if cfg.default_limits.workspace_bytes > room:
        problems.append(
            f"default_workspace_bytes={cfg.default_limits.workspace_bytes} does not fit in "
            f"default_memory_bytes={cfg.default_limits.memory_bytes} (workspace files are held "
            f"in the container's memory, which keeps {WORKSPACE_MEMORY_HEADROOM} bytes for the "
            "runner); lower the first or raise the second"
        )
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
    remote = not _is_local_listen(cfg.listen)
    if cfg.tokens and remote and not cfg.tls_enabled and not cfg.allow_insecure_remote:
        problems.append(
            f"listen={cfg.listen!r} reaches beyond this machine without TLS: the bearer "
            "tokens would cross the network in clear; set tls_cert and tls_key, or listen "
            "on 127.0.0.1:PORT or unix:/path (allow_insecure_remote=true only behind a "
            "TLS-terminating proxy)"
        )
    if not _is_local_metrics(cfg.metrics_address) and not cfg.allow_insecure_remote:
        problems.append(
            f"metrics_address={cfg.metrics_address!r} reaches beyond this machine: the "
            "endpoint has no authentication and shows pool and session figures; use "
            "127.0.0.1:PORT (scrape through a proxy), 0 to turn it off, or "
            "allow_insecure_remote=true"
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


def _is_local_metrics(address: str) -> bool:
    if address.strip() in ("", "0", "off"):
        return True
    host = address.rpartition(":")[0]
    return _is_loopback_host(host or "127.0.0.1")


def _is_loopback_host(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_local_listen(listen: str) -> bool:
    """True for unix sockets and loopback addresses (what needs no token)."""
    if listen.startswith("unix:"):
        return True
    return _is_loopback_host(listen.rsplit(":", 1)[0])
