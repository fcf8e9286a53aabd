"""The daemon's lifecycle: start, serve, drain, stop.

`Daemon.start()` reconciles leftovers, starts the gRPC server (executor
service, health, reflection), the metrics endpoint, the pool and the session
reaper. `Daemon.stop()` shuts down in stages: health NOT_SERVING and no new
sessions or snippets; running snippets get up to `shutdown_drain_s` to finish;
then the gRPC server stops and every container is destroyed. `serve()` wires
this to SIGTERM/SIGINT (a second signal forces exit at once; the containers
then exit by themselves when their attach streams close).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import json
import logging
import os
import resource
import signal
import ssl
import sys
import time
import uuid
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from executor.daemon.auth import Authenticator
from executor.daemon.config import DaemonConfig
from executor.daemon.errors import ConfigError
from executor.daemon.interceptor import Gate
from executor.daemon.metrics import DaemonMetrics, MetricsServer, parse_address
from executor.daemon.pool import Pool
from executor.daemon.reconcile import LABEL_DAEMON_PID, daemon_labels, reconcile
from executor.daemon.service import ExecutorService
from executor.daemon.sessions import SessionRegistry
from executor.daemon.supervise import LoopHealth, supervise
from executor.sandbox import LABEL_INSTANCE
from proto import executor_pb2 as pb
from proto import executor_pb2_grpc as pb_grpc
from proto.frames import DEFAULT_MAX_FRAME
from proto.limits import MiB, SessionLimits

log = logging.getLogger("corral.daemon")

STREAM_WINDOW_BYTES = 256 << 10  # per-stream HTTP/2 receive window
SWITCH_INTERVAL_S = 0.0005  # seconds; CPython's default is 0.005
FD_LIMIT_WANTED = 65536  # soft RLIMIT_NOFILE the daemon raises itself to (within the hard limit)
GC_THRESHOLD0 = 50_000  # allocations between young collections; CPython's default is 700
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Executor"].full_name
CAPACITY_CHECK_S = 0.5  # how often health follows the pool's capacity


def serving_status(accepting: bool, pool: Pool | None) -> Any:
    """Health for a balancer: SERVING while a new session could be opened here.

    NOT_SERVING while draining, or while the pool is exhausted: nothing warm or
    starting, and no room to start another container (pool_max reached).
    """
    status = health_pb2.HealthCheckResponse
    if not accepting or pool is None:
        return status.NOT_SERVING
    s = pool.stats()
    total = s.warm + s.starting + s.in_use + s.destroying
    if s.warm + s.starting == 0 and total >= s.max_containers:
        return status.NOT_SERVING
    return status.SERVING


def server_options(cfg: DaemonConfig) -> list[tuple[str, Any]]:
    """gRPC channel arguments: what one peer can make the daemon hold in memory.

    Received messages are capped small (`max_message_bytes`; files stream in
    chunks), and a connection's concurrent streams are bounded, so a peer's
    unread data is bounded by streams x flow-control window. Results may be as
    large as a container frame, hence the larger send cap.
    """
    return [
        ("grpc.max_receive_message_length", cfg.max_message_bytes),
        ("grpc.max_send_message_length", max(cfg.max_message_bytes, DEFAULT_MAX_FRAME + MiB)),
        ("grpc.max_concurrent_streams", cfg.max_streams_per_connection),
        ("grpc.so_reuseport", 0),
        # No BDP probing: it grows a stream's flow-control window to many MiB, which is
        # what a peer can make the daemon buffer per stream without any read by a
        # handler. A fixed window of STREAM_WINDOW_BYTES keeps that bounded.
        ("grpc.http2.bdp_probe", 0),
        ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES),
    ]


def configure_health_and_reflection(server: grpc.aio.Server) -> health_aio.HealthServicer:
    """Standard health service (overall and per-service) and server reflection."""
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = (
        SERVICE_NAME,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(names, server)
    return health


class Daemon:
    """One running corrald: owns the gRPC server, the pool, the sessions."""

    def __init__(self, config: DaemonConfig, *, docker_client: Any = None) -> None:
        self.config = config
        self.instance_id = config.instance_id or f"corrald-{uuid.uuid4().hex[:12]}"
        self._docker = docker_client
        self.metrics = DaemonMetrics()
        self.route = config.advertise_address or self.instance_id  # prefixes session ids
        self.sessions = SessionRegistry(self.route)
        self.image = config.image
        self.runtime = "runc"  # resolved from config.runtime by start()
        self.port = 0
        self.metrics_port = 0
        self.removed_at_start: list[str] = []  # leftovers of dead daemons removed by start()
        self.pool: Pool | None = None
        self.service: ExecutorService | None = None
        self._server: grpc.aio.Server | None = None
        self._health: health_aio.HealthServicer | None = None
        self._metrics_server: MetricsServer | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._capacity: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.loop_health = LoopHealth(on_change=self._loops_changed)
        self._health_tasks: set[asyncio.Task[None]] = set()
        self.fd_limit = 0  # RLIMIT_NOFILE soft limit after start() raised it

    @property
    def target(self) -> str:
        """The address clients dial (with the real port when asked for port 0)."""
        listen = self.config.listen
        if listen.startswith("unix:"):
            return listen
        host = listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    # --- start ---------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        old_fds, self.fd_limit = raise_fd_limit()
        if self.fd_limit != old_fds:
            log.info("raised the fd limit", extra={"from": old_fds, "to": self.fd_limit})
        # Driver calls block a thread each (a running snippet holds one for its whole
        # duration), so the default executor must not be the small CPU-sized one.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=2 * cfg.pool_max + 16, thread_name_prefix="corral-io"
        )
        loop.set_default_executor(self._executor)
        try:
            if self._docker is None:
                import docker

                self._docker = await asyncio.to_thread(
                    docker.from_env, max_pool_size=2 * cfg.pool_max + 16
                )
                await asyncio.to_thread(self._docker.ping)
            if not self.image:
                from executor.sandbox.image import ensure_image

                self.image = await asyncio.to_thread(ensure_image, client=self._docker)
        except Exception as exc:
            raise ConfigError(
                f"cannot prepare Docker or the sandbox image: {exc}; run `corrald doctor`"
            ) from exc
        self.runtime = await asyncio.to_thread(self._resolve_runtime)
        removed = await asyncio.to_thread(reconcile, self._docker, self.instance_id)
        self.removed_at_start = removed

        labels = daemon_labels(self.instance_id)
        pool = Pool(
            self._start_fn(labels),
            cfg.default_limits,
            warm=cfg.pool_warm,
            max_containers=cfg.pool_max,
            refill_concurrency=cfg.refill_concurrency,
            min_available_memory=cfg.min_available_memory_bytes,
            health_interval_s=cfg.health_check_interval_s,
            metrics=self.metrics,
            warm_max=cfg.pool_warm_max or max(cfg.pool_warm, cfg.pool_max // 2),
            watch_events=self._events_fn(),
            loop_health=self.loop_health,
        )
        self.pool = pool
        self.metrics.add_gauge(
            "corral_pool_warm", "Warm containers ready.", lambda: pool.stats().warm
        )
        self.metrics.add_gauge(
            "corral_pool_in_use", "Containers held by sessions.", lambda: pool.stats().in_use
        )
        self.metrics.add_gauge(
            "corral_pool_starting", "Containers starting.", lambda: pool.stats().starting
        )
        self.metrics.add_gauge("corral_sessions", "Open sessions.", lambda: len(self.sessions))
        self.metrics.add_gauge(
            "corral_pool_warm_target",
            "Warm containers wanted now (follows the open rate between floor and ceiling).",
            lambda: pool.target,
        )
        self.metrics.add_gauge(
            "corral_pool_open_rate", "Opens per second over the demand window.", pool.open_rate
        )
        self.metrics.add_gauge(
            "corral_pool_queued", "Openers waiting for a container.", lambda: pool.waiting
        )
        self.metrics.add_gauge(
            "corral_loops_down",
            "Background loops failing repeatedly (health is NOT_SERVING while above 0).",
            lambda: len(self.loop_health.problems()),
        )
        self.service = ExecutorService(cfg, pool, self.sessions, self.metrics, self.instance_id)

        server = grpc.aio.server(
            options=server_options(cfg),
            interceptors=[Gate(Authenticator(cfg.tokens))],
            maximum_concurrent_rpcs=cfg.max_concurrent_rpcs,
        )
        pb_grpc.add_ExecutorServicer_to_server(self.service, server)
        self._health = configure_health_and_reflection(server)
        self.port = self._bind(server)
        self._server = server
        await server.start()
        pool.start()
        self._reaper = asyncio.create_task(
            supervise("session-reaper", self._reap_step, self.loop_health, on_failure=self._fail),
            name="session-reaper",
        )

        address = parse_address(cfg.metrics_address)
        if address is not None:
            self._metrics_server = MetricsServer(
                self.metrics.registry, *address, problems=self.problems
            )
            try:
                self.metrics_port = await self._metrics_server.start()
            except OSError as exc:
                await self.stop(drain_s=0)
                raise ConfigError(
                    f"cannot serve metrics on {cfg.metrics_address}: {exc}; set metrics_address "
                    "to a free HOST:PORT, or 0 to turn metrics off"
                ) from exc
        await self._set_health(self.loop_health.healthy)
        self._capacity = asyncio.create_task(self._capacity_loop(), name="health-capacity")
        log.info(
            "listening",
            extra={
                "address": self.target,
                "tls": cfg.tls_enabled,
                "auth": cfg.auth_enabled,
                "instance": self.instance_id,
                "route": self.route,
                "image": self.image,
                "runtime": self.runtime,
                "metrics_port": self.metrics_port,
                "reconciled": len(removed),
                "fd_limit": self.fd_limit,
            },
        )

    def _bind(self, server: grpc.aio.Server) -> int:
        cfg = self.config
        if cfg.tls_enabled:
            creds = _tls_credentials(cfg.tls_cert, cfg.tls_key)
            try:
                port = server.add_secure_port(cfg.listen, creds)
            except RuntimeError as exc:
                raise ConfigError(
                    f"cannot listen with TLS on {cfg.listen}: {exc}; the address may be in "
                    "use or invalid (set listen to a free HOST:PORT), or tls_cert/tls_key "
                    "unusable by gRPC"
                ) from exc
        else:
            try:
                port = server.add_insecure_port(cfg.listen)
            except RuntimeError as exc:  # grpc raises RuntimeError("Failed to bind ...")
                raise ConfigError(
                    f"cannot listen on {cfg.listen}: {exc}; is another daemon using it? "
                    "set listen to a free HOST:PORT or unix:/path"
                ) from exc
        if port == 0 and not cfg.listen.startswith("unix:"):
            raise ConfigError(f"cannot listen on {cfg.listen}: address in use or invalid")
        return port

    def _resolve_runtime(self) -> str:
        """The operator's runtime setting against the engine; logged once."""
        from executor.sandbox.runtimes import RuntimeSetupError, check_limits, resolve

        try:
            choice = resolve(self.config.runtime, self._docker)
            check_limits(choice.runtime, self.config.default_limits.pids)
        except RuntimeSetupError as exc:
            raise ConfigError(str(exc)) from exc
        log.info("runtime", extra={"runtime": choice.runtime, "reason": choice.reason})
        return choice.runtime

    def _start_fn(self, labels: dict[str, str]) -> Any:
        from executor.daemon.channel import AsyncSandbox

        client, image, runtime = self._docker, self.image, self.runtime
        timeout = self.config.container_ready_timeout_s

        def start(limits: SessionLimits) -> Any:
            return AsyncSandbox.start(
                client, image, limits, labels=labels, ready_timeout=timeout, runtime=runtime
            )

        return start

    def emergency_cleanup(self, budget_s: float = 3.0) -> None:
        """Forced exit: remove this process's containers within a small time budget.

        Started containers would exit by themselves once the process is gone
        (end of stdin), but one caught between create and start would stay in
        "created" until the next daemon's reconciliation; this catches it now.
        """
        if self._docker is None:
            return
        filters = {
            "label": [f"{LABEL_INSTANCE}={self.instance_id}", f"{LABEL_DAEMON_PID}={os.getpid()}"]
        }
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
        try:
            found = self._docker.api.containers(all=True, filters=filters)
            futures = [
                pool.submit(self._docker.api.remove_container, c["Id"], force=True) for c in found
            ]
            concurrent.futures.wait(futures, timeout=budget_s)
        except Exception as exc:  # best effort on the way out
            log.warning("emergency cleanup failed", extra={"error": str(exc)[:200]})
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    async def wait_ready(self, timeout: float | None = None) -> bool:
        """True once the pool is warm; logs "ready"."""
        assert self.pool is not None
        ok = await self.pool.wait_warm(timeout)
        if ok:
            log.info("ready", extra={"address": self.target, "warm": self.pool.stats().warm})
        return ok

    # --- background ----------------------------------------------------------

    def problems(self) -> list[str]:
        """Why this daemon is not fully serving (empty when it is)."""
        return self.loop_health.problems()

    def _fail(self, loop_name: str) -> None:
        self.metrics.loop_failures.inc(loop=loop_name)

    def _loops_changed(self, healthy: bool) -> None:
        """A background loop went down or recovered: health follows (from the loop)."""
        if self._stopped.is_set() or self._health is None:
            return
        if not healthy:
            log.error("not serving: " + "; ".join(self.problems()))
        task = asyncio.get_running_loop().create_task(self._set_health(healthy))
        self._health_tasks.add(task)
        task.add_done_callback(self._health_tasks.discard)

    async def _set_health(self, healthy: bool) -> None:
        if self._health is None or self._stopped.is_set():
            return
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if healthy
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._health.set("", status)
        if not healthy:  # the capacity loop brings the Executor service back
            await self._health.set(SERVICE_NAME, status)

    def _events_fn(self) -> Any:
        """Opens the engine's event stream of pauses of this daemon's containers."""
        client, instance = self._docker, self.instance_id
        api = getattr(client, "api", None)
        if api is None or not hasattr(api, "events"):
            return None

        def open_stream() -> Any:
            return api.events(
                decode=True,
                filters={
                    "type": "container",
                    "event": ["pause"],
                    "label": [f"{LABEL_INSTANCE}={instance}", f"{LABEL_DAEMON_PID}={os.getpid()}"],
                },
            )

        return open_stream

    async def _reap_step(self) -> None:
        """One reaper pass: end sessions past their idle timeout or lifetime."""
        assert self.service is not None
        await asyncio.sleep(self.config.session_reap_interval_s)
        failed: Exception | None = None
        for session, reason in self.sessions.expired():
            try:  # one session failing to end must not keep the others alive
                if reason == "lifetime" and session.lock.locked():
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(session.sandbox.kill)
                self.metrics.sessions_expired.inc()
                await self.service.end_session(session, f"expired ({reason})")
            except Exception as exc:
                failed = failed or exc
        if failed is not None:
            raise failed

    async def _capacity_loop(self) -> None:
        """Keep the Executor service's health at `serving_status` (readiness: opens go to
        SERVING daemons), and NOT_SERVING while a background loop is down. The overall
        status ("") follows only the loops (liveness): a full pool is no reason to restart
        a daemon and its sessions.
        """
        assert self._health is not None
        last = None
        while True:
            accepting = self.service is not None and self.service.accepting
            status = serving_status(
                accepting and not self._stopped.is_set() and self.loop_health.healthy, self.pool
            )
            if status != last:
                await self._health.set(SERVICE_NAME, status)
                last = status
            await asyncio.sleep(CAPACITY_CHECK_S)

    # --- stop ----------------------------------------------------------------

    async def stop(self, drain_s: float | None = None) -> None:
        """Staged shutdown; safe to call twice."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        drain = self.config.shutdown_drain_s if drain_s is None else drain_s
        log.info("shutting down", extra={"drain_s": drain})
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self.service is not None:
            self.service.accepting = False
            deadline = time.monotonic() + drain
            while self.service.running and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.service.running:
                log.warning(
                    "drain deadline passed; killing running snippets",
                    extra={"running": len(self.service.running)},
                )
        if self._reaper is not None:
            self._reaper.cancel()
        if self._capacity is not None:
            self._capacity.cancel()
        if self.service is not None:
            for session in self.sessions.all():
                await self.service.end_session(session, "daemon shutdown")
        if self._server is not None:
            await self._server.stop(grace=1.0)
        if self.pool is not None:
            await self.pool.close()
        if self._metrics_server is not None:
            await self._metrics_server.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        log.info("stopped", extra={"instance": self.instance_id})


def _tls_credentials(cert: str, key: str) -> grpc.ServerCredentials:
    """Server credentials, after checking the files hold a certificate and its key.

    gRPC only reports a bad certificate as a failure to bind; reading the pair
    with the `ssl` module first says what is actually wrong.
    """
    try:
        with open(key, "rb") as k, open(cert, "rb") as c:
            key_pem, cert_pem = k.read(), c.read()
    except OSError as exc:
        raise ConfigError(f"cannot read tls_cert/tls_key: {exc}") from exc
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(
            f"tls_cert={cert!r} and tls_key={key!r} are not a PEM certificate chain and its "
            f"matching private key ({exc}); check both files (openssl x509 -in CERT -noout "
            "-text; the key must belong to the first certificate)"
        ) from exc
    return grpc.ssl_server_credentials([(key_pem, cert_pem)])


def write_ready_file(path: str, daemon: Daemon) -> None:
    """The ready file: where the daemon listens, for launchers that asked for port 0."""
    doc = {
        "address": daemon.target,
        "port": daemon.port,
        "metrics_port": daemon.metrics_port,
        "instance_id": daemon.instance_id,
        "pid": os.getpid(),
    }
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    os.replace(tmp, path)  # readers never see a half-written file


def tune_gc() -> bool:
    """Keep the cyclic GC off the snippet path (CORRAL_GC_TUNE=0 leaves Python's defaults).

    Measured under load (benchmarks/load.py): with the default thresholds a
    full collection walks every object made at import and start-up (grpc,
    docker, protobuf: ~10^5 objects) and held the loop 40-120 ms on this
    2-core host, a snippet's p99 by itself. `gc.freeze()` moves everything
    alive after start-up out of the collector's sight (a documented CPython
    facility for long-lived servers); the larger first threshold runs young
    collections less often, each on the same few thousand per-snippet objects
    (reference counting frees nearly all of them before any collection).
    """
    if os.environ.get("CORRAL_GC_TUNE", "1") == "0":
        return False
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD0, 20, 20)
    return True


def raise_fd_limit(want: int = FD_LIMIT_WANTED) -> tuple[int, int]:
    """Raise the soft open-file limit toward the hard one; returns (before, after).

    Every client connection, container attach stream and Docker API connection
    holds an fd; at a soft limit of 1024 a burst of idle connections starved the
    pool (issue #10). Each session holds one descriptor (its container's attach
    socket) for its whole life, plus the Docker connections: measured by benchmarks/density.py,
    about 1 fd per session on top of ~50. Under the common soft limit of 1024
    the daemon would fail opens near 970 sessions while memory still had room;
    the hard limit (often 524288 under systemd) is the operator's real ceiling.
    """

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit", extra={"error": str(exc)})
            return soft, soft
        return soft, target
    return soft, soft


async def serve(config: DaemonConfig) -> int:
    """Run until SIGTERM/SIGINT, then stop in stages; a second signal exits at once."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("signal received; draining", extra={"signal": signal.Signals(signum).name})
            stop.set()
        else:
            log.warning("second signal; exiting now")
            daemon.emergency_cleanup()
            os._exit(1)

    # Docker API calls run in threads; a short switch interval hands the GIL back
    # to the event loop sooner, which keeps snippet latency low during refills.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    daemon = Daemon(config)
    await daemon.start()
    tune_gc()
    from executor.bench import stalls

    monitor = stalls.install()  # off unless CORRAL_STALL_REPORT_S is set

    async def announce() -> None:
        await daemon.wait_ready()
        if config.ready_file:
            write_ready_file(config.ready_file, daemon)

    ready = asyncio.create_task(announce())
    try:
        await stop.wait()
    finally:
        ready.cancel()
        if config.ready_file:
            with contextlib.suppress(OSError):
                os.unlink(config.ready_file)
    await daemon.stop()
    if monitor is not None:
        monitor.stop()
    return 0
