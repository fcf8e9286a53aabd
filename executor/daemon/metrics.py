"""Prometheus text-format metrics and the small HTTP endpoint that serves them.

No client library: a counter, a gauge and a histogram are a few lines each,
and the text exposition format (version 0.0.4) is plain lines of
`name{label="v"} value`. The endpoint is an asyncio server on the daemon's
loop answering `GET /metrics` (and `GET /healthz`: "ok", or 503 with the
reasons the daemon is not serving, which `corrald doctor` shows); it reads at most one small request line and
header block with a timeout, so a slow or hostile scraper cannot hold it.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import threading
from collections.abc import Callable, Sequence

LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


def _escape(value: str) -> str:
    """Label values escape backslash, double quote and newline (exposition format)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, label_names: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.label_names = tuple(label_names)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        return tuple(str(labels.get(n, "")) for n in self.label_names)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help: str, label_names: Sequence[str] = ()) -> None:
        super().__init__(name, help, label_names)
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        if not items and not self.label_names:
            items = [((), 0.0)]
        return self.header() + [
            f"{self.name}{_labels(list(zip(self.label_names, k)))} {_fmt(v)}" for k, v in items
        ]


class Gauge(_Metric):
    """A gauge read from a callback at scrape time (the pool owns the numbers)."""

    kind = "gauge"

    def __init__(self, name: str, help: str, read: Callable[[], float]) -> None:
        super().__init__(name, help)
        self._read = read

    def render(self) -> list[str]:
        return [*self.header(), f"{self.name} {_fmt(self._read())}"]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: Sequence[float] = LATENCY_BUCKETS_S) -> None:
        super().__init__(name, help)
        self.buckets = tuple(sorted(buckets))
        self._counts = [0] * (len(self.buckets) + 1)
        self._sum = 0.0
        self._count = 0

    def observe(self, value: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets, value)] += 1
            self._sum += value
            self._count += 1

    @property
    def count(self) -> int:
        return self._count

    def render(self) -> list[str]:
        with self._lock:
            counts, total, n = list(self._counts), self._sum, self._count
        lines = self.header()
        running = 0
        for bound, c in zip((*self.buckets, math.inf), counts):
            running += c
            lines.append(f'{self.name}_bucket{{le="{_fmt(bound)}"}} {running}')
        lines.append(f"{self.name}_sum {_fmt(total)}")
        lines.append(f"{self.name}_count {n}")
        return lines


class Registry:
    """The daemon's metrics, rendered in registration order."""

    def __init__(self) -> None:
        self._metrics: list[_Metric] = []

    def add(self, metric: _Metric) -> _Metric:
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for m in self._metrics:
            lines.extend(m.render())
        return "\n".join(lines) + "\n"


class DaemonMetrics:
    """The named metrics the daemon updates; gauges read the pool at scrape time."""

    def __init__(self) -> None:
        self.registry = Registry()
        r = self.registry
        self.open_latency = Histogram(
            "corral_session_open_seconds", "Time to open a session (pool acquire + init)."
        )
        self.execute_latency = Histogram(
            "corral_execute_seconds", "Time from ExecuteStart to ExecuteResult."
        )
        self.verdicts = Counter("corral_verdicts_total", "Snippet verdicts.", ("verdict",))
        self.containers_created = Counter(
            "corral_containers_created_total", "Containers started with a ready runner."
        )
        self.containers_destroyed = Counter(
            "corral_containers_destroyed_total", "Containers destroyed."
        )
        self.containers_failed = Counter(
            "corral_containers_failed_total",
            "Containers that failed to start, died, or failed a health check.",
        )
        self.sessions_opened = Counter("corral_sessions_opened_total", "Sessions opened.")
        self.sessions_expired = Counter(
            "corral_sessions_expired_total", "Sessions ended by idle timeout or lifetime."
        )
        self.opens_refused = Counter(
            "corral_pool_opens_refused_total",
            "Opens that found no container within the open wait (RESOURCE_EXHAUSTED).",
        )
        self.pool_evictions = Counter(
            "corral_pool_evictions_total",
            "Idle warm containers destroyed to make room for a session with custom limits.",
        )
        self.pool_trimmed = Counter(
            "corral_pool_trimmed_total",
            "Idle warm containers destroyed because demand fell below the warm target.",
        )
        self.loop_failures = Counter(
            "corral_loop_failures_total",
            "Failed steps of a background loop (each is logged, backed off and retried).",
            ("loop",),
        )
        for m in (
            self.open_latency,
            self.execute_latency,
            self.verdicts,
            self.containers_created,
            self.containers_destroyed,
            self.containers_failed,
            self.sessions_opened,
            self.sessions_expired,
            self.opens_refused,
            self.pool_evictions,
            self.pool_trimmed,
            self.loop_failures,
        ):
            r.add(m)

    def add_gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        self.registry.add(Gauge(name, help, read))


class MetricsServer:
    """`GET /metrics` over plain HTTP/1.0 on the daemon's event loop."""

    READ_TIMEOUT_S = 5.0
    MAX_REQUEST_BYTES = 8192

    def __init__(
        self,
        registry: Registry,
        host: str,
        port: int,
        problems: Callable[[], list[str]] | None = None,
    ) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self.problems = problems  # `GET /healthz`: 200 "ok", or 503 with one problem a line
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; returns the bound port (useful when asked for port 0)."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(
                reader.readuntil(b"\r\n\r\n"), timeout=self.READ_TIMEOUT_S
            )
            line = head[: self.MAX_REQUEST_BYTES].split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "GET" and parts[1].split("?")[0] == "/metrics":
                status, body = "200 OK", self.registry.render().encode()
                ctype = "text/plain; version=0.0.4; charset=utf-8"
            elif len(parts) >= 2 and parts[0] == "GET" and parts[1].split("?")[0] == "/healthz":
                found = self.problems() if self.problems is not None else []
                status = "503 Service Unavailable" if found else "200 OK"
                body = ("".join(p + "\n" for p in found) or "ok\n").encode()
                ctype = "text/plain; charset=utf-8"
            else:
                status, body, ctype = "404 Not Found", b"try GET /metrics\n", "text/plain"
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()


def parse_address(address: str) -> tuple[str, int] | None:
    """`host:port` -> (host, port); "0" or "" -> None (metrics off)."""
    if address in ("", "0", "off"):
        return None
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)
