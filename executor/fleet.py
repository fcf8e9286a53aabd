"""`corrald fleet nginx-config`: many daemons behind one nginx gRPC proxy.

Sessions name their daemon (proto/routing.py); the client sends the route as
`corral-route` metadata. The rendered configuration maps each route to its
daemon and balances everything else (OpenSession, health, stats) over all of
them. The route map lists each daemon explicitly, so the proxy forwards only
to addresses the operator named: a client cannot make the proxy connect
anywhere else by inventing a route. Kubernetes, where daemons come and go,
uses a pattern restricted to the pod network instead
(deploy/kubernetes/proxy.yaml, docs/fleet.md).
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proto.routing import ROUTE_METADATA


@dataclass(frozen=True)
class Backend:
    """One daemon as the proxy reaches it."""

    host: str
    port: int

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Backend:
        host, sep, port = text.strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"daemon address {text!r} must be HOST:PORT")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            # nginx resolves names in upstream blocks once at start; that is fine for
            # static fleets, but the route map must name literal addresses.
            if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", host):
                raise ValueError(f"daemon host {host!r} is not an address or a DNS name") from None
        return cls(host, int(port))


@dataclass(frozen=True)
class ProxyConfig:
    """What `render_nginx` needs: where to listen, which daemons, where nginx keeps state."""

    listen: str
    daemons: tuple[Backend, ...]
    state_dir: Path  # pid file, logs and temp files (nginx needs a writable place)
    tls_cert: Path | None = None  # terminate TLS at the proxy when both are given
    tls_key: Path | None = None
    stream_timeout_s: int = 3600  # longest a proxied call may stay open (Execute streams)


def render_nginx(cfg: ProxyConfig) -> str:
    """A whole nginx.conf for the fleet (test it with `nginx -t -c FILE`)."""
    if not cfg.daemons:
        raise ValueError("a fleet needs at least one daemon")
    state = cfg.state_dir
    routes = "\n".join(
        f'        "{d.address}" {d.address};' for d in cfg.daemons
    )  # exact matches only: unknown routes fall back to the balanced group
    servers = "\n".join(
        f"        server {d.address} max_fails=1 fail_timeout=5s;" for d in cfg.daemons
    )
    tls = ""
    listen_opts = "http2"
    if cfg.tls_cert and cfg.tls_key:
        listen_opts = "ssl http2"
        tls = (
            f"        ssl_certificate {cfg.tls_cert};\n"
            f"        ssl_certificate_key {cfg.tls_key};\n"
            "        ssl_protocols TLSv1.2 TLSv1.3;\n"
        )
    t = cfg.stream_timeout_s
    return f"""# Corral fleet proxy, rendered by `corrald fleet nginx-config`.
# Calls carrying `{ROUTE_METADATA}` metadata go to the daemon that holds the session;
# everything else (OpenSession, health, stats) is balanced over all daemons.
worker_processes 1;
pid {state}/nginx.pid;
error_log {state}/error.log warn;
daemon off;

events {{
    worker_connections 4096;
}}

http {{
    access_log {state}/access.log;
    client_body_temp_path {state}/client_body;
    proxy_temp_path {state}/proxy;
    fastcgi_temp_path {state}/fastcgi;
    uwsgi_temp_path {state}/uwsgi;
    scgi_temp_path {state}/scgi;

    map $http_{ROUTE_METADATA.replace("-", "_")} $corral_backend {{
        default corral_open;
{routes}
    }}

    upstream corral_open {{
        least_conn;
{servers}
    }}

    server {{
        listen {cfg.listen} {listen_opts};
{tls}        # Sizes are the daemons' business: each enforces its own per-method caps.
        client_max_body_size 0;
        grpc_read_timeout {t}s;
        grpc_send_timeout {t}s;
        grpc_socket_keepalive on;

        location / {{
            grpc_pass grpc://$corral_backend;
            # Retry a call on another daemon only when the first could not be reached.
            grpc_next_upstream error timeout;
            grpc_next_upstream_tries 3;
        }}
    }}
}}
"""


def _cmd_nginx(args: argparse.Namespace) -> int:
    try:
        daemons = tuple(Backend.parse(d) for d in args.daemon)
        cfg = ProxyConfig(
            listen=args.listen,
            daemons=daemons,
            state_dir=Path(args.state_dir).resolve(),
            tls_cert=Path(args.tls_cert) if args.tls_cert else None,
            tls_key=Path(args.tls_key) if args.tls_key else None,
        )
        text = render_nginx(cfg)
    except ValueError as exc:
        print(f"corrald fleet: {exc}", file=sys.stderr)
        return 2
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "fleet",
        help="configuration for many daemons behind a gRPC proxy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="fleet_command", required=True, metavar="WHAT")
    n = sub.add_parser("nginx-config", help="render an nginx.conf routing sessions to daemons")
    n.add_argument(
        "--daemon",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="a daemon's advertise_address (repeat for each daemon)",
    )
    n.add_argument(
        "--listen", default="127.0.0.1:50050", help="proxy address (default: %(default)s)"
    )
    n.add_argument(
        "--state-dir", default=".", help="directory for nginx's pid, logs and temp files"
    )
    n.add_argument("--tls-cert", help="terminate TLS at the proxy with this certificate (PEM)")
    n.add_argument("--tls-key", help="the certificate's private key (PEM)")
    n.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    n.set_defaults(func=_cmd_nginx)


# --- a local fleet: nginx and N daemons on this machine (tests, benchmarks) ----------


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now on `host` (the caller binds it soon after)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def nginx_binary() -> str | None:
    import shutil

    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


class LocalFleet:
    """nginx on 127.0.0.1 in front of `count` `corrald serve` subprocesses.

    Each daemon listens on its own loopback port, advertises it as its route
    and has its own instance id (`<prefix>-<i>`: its containers' label). Use as
    a context manager: on exit nginx and every daemon are stopped (SIGTERM,
    then SIGKILL), whatever state they are in; the caller removes containers
    by instance label (`instance_ids`).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        count: int = 3,
        prefix: str = "fleet",
        daemon_flags: tuple[str, ...] = (),
        nginx: str | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.count = count
        self.prefix = prefix
        self.daemon_flags = daemon_flags
        self.nginx = nginx or nginx_binary() or "nginx"
        self.ports = [free_port() for _ in range(count)]
        self.routes = [f"127.0.0.1:{p}" for p in self.ports]
        self.instance_ids = [f"{prefix}-{i}" for i in range(count)]
        self.daemons: list[Any] = []
        self.proxy_port = 0
        self._nginx: Any = None

    @property
    def target(self) -> str:
        """The proxy's address: what clients dial."""
        return f"127.0.0.1:{self.proxy_port}"

    def __enter__(self) -> LocalFleet:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        import subprocess
        import time

        from executor.daemon.testing import DaemonProcess

        for route, instance in zip(self.routes, self.instance_ids, strict=True):
            self.daemons.append(
                DaemonProcess(
                    f"--listen={route}",
                    f"--advertise-address={route}",
                    f"--instance-id={instance}",
                    "--no-self-check",
                    "--metrics-address=0",
                    *self.daemon_flags,
                )
            )
        for d in self.daemons:  # all three start their pools at once
            d.start()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.proxy_port = free_port()
        conf = self.state_dir / "nginx.conf"
        conf.write_text(
            render_nginx(
                ProxyConfig(
                    listen=self.target,
                    daemons=tuple(Backend.parse(r) for r in self.routes),
                    state_dir=self.state_dir,
                )
            )
        )
        err = self.state_dir / "error.log"
        self._nginx = subprocess.Popen(
            [self.nginx, "-c", str(conf), "-p", str(self.state_dir), "-e", str(err)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not _accepts(self.proxy_port):
            if self._nginx.poll() is not None or time.monotonic() > deadline:
                log = err.read_text() if err.exists() else ""
                raise RuntimeError(f"nginx did not start: {log[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        import subprocess

        if self._nginx is not None and self._nginx.poll() is None:
            self._nginx.terminate()  # SIGTERM: nginx's fast shutdown
            try:
                self._nginx.wait(10)
            except subprocess.TimeoutExpired:
                self._nginx.kill()
                self._nginx.wait(10)
        for d in self.daemons:
            try:
                d.stop(timeout=30)
            except Exception:  # one daemon's failure must not leave the others running
                if d.proc.poll() is None:
                    d.proc.kill()


def _accepts(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
