"""Host canaries: secrets and tripwires a contained snippet can never touch.

- an environment secret (CANARY_ENV=<random>) placed in the daemon's environment;
- a secret file with random content in a host temp directory;
- TCP listeners that must never accept a connection: one on 127.0.0.1 and one
  on the Docker bridge gateway (reachable from any container that has a network);
- a host directory whose tree hash must stay unchanged.

After every snippet the campaign asks `leaks(text)` of every output and
`host_problems()` of the host side.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from types import TracebackType

import psutil

CANARY_ENV = "CORRAL_FUZZ_CANARY"  # the variable set in the daemon's environment
BRIDGE_INTERFACE = "docker0"


def _token(kind: str) -> str:
    return f"corral-canary-{kind}-{secrets.token_hex(16)}"


def bridge_address() -> str | None:
    """IPv4 address of the Docker bridge on this host, when there is one."""
    for addr in psutil.net_if_addrs().get(BRIDGE_INTERFACE, []):
        if addr.family == socket.AF_INET:
            return str(addr.address)
    return None


def tree_hash(root: Path) -> str:
    """Hash of every path, mode and file content under `root` (symlinks not followed)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames) + [f"{d}/" for d in dirnames]:
            path = Path(dirpath, name.rstrip("/"))
            st = path.lstat()
            h.update(f"{path.relative_to(root)}\0{st.st_mode:o}\0".encode())
            if path.is_file() and not path.is_symlink():
                h.update(path.read_bytes())
    return h.hexdigest()


class Tripwire:
    """A listener that counts every connection it accepts (each one is an escape)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self.accepted: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name=f"tripwire-{self.port}", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(f"{peer[0]}:{peer[1]}")
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()


class Canaries:
    """All host canaries of one fuzz run; use as a context manager."""

    def __init__(self, *, bridge: bool = True) -> None:
        self.env_value = _token("env")
        self.file_value = _token("file")
        self.root = Path(tempfile.mkdtemp(prefix="corral-fuzz-"))
        self.file_path = self.root / "secret.txt"
        self.file_path.write_text(self.file_value + "\n", encoding="utf-8")
        self.file_path.chmod(0o600)
        self.host_dir = self.root / "host-dir"
        (self.host_dir / "sub").mkdir(parents=True)
        (self.host_dir / "keep.txt").write_text(_token("dir"), encoding="utf-8")
        (self.host_dir / "sub" / "nested.bin").write_bytes(secrets.token_bytes(256))
        self.tree_hash = tree_hash(self.host_dir)
        self.loopback = Tripwire("127.0.0.1")
        gateway = bridge_address() if bridge else None
        self.bridge: Tripwire | None = None
        if gateway is not None:
            try:
                self.bridge = Tripwire(gateway)
            except OSError:
                self.bridge = None

    # -- what snippets and the daemon get -------------------------------------------
    def daemon_env(self) -> dict[str, str]:
        """Variables to add to the daemon process's environment."""
        return {CANARY_ENV: self.env_value}

    def placeholders(self) -> dict[str, str]:
        bridge = self.bridge or self.loopback
        return {
            "@@CANARY_ENV@@": CANARY_ENV,
            "@@CANARY_FILE@@": str(self.file_path),
            "@@LISTEN_PORT@@": str(self.loopback.port),
            "@@BRIDGE_HOST@@": bridge.host,
            "@@BRIDGE_PORT@@": str(bridge.port),
            "@@HOST_DIR@@": str(self.host_dir),
        }

    def secrets(self) -> dict[str, str]:
        return {"env secret": self.env_value, "file secret": self.file_value}

    # -- checks ---------------------------------------------------------------------
    def leaks(self, text: str) -> list[str]:
        """Names of the canaries whose secret appears in `text`."""
        return [name for name, value in self.secrets().items() if value in text]

    def host_problems(self) -> list[str]:
        """Host-side evidence of an escape: tripwire connections, a changed directory or file."""
        problems = []
        for wire in (self.loopback, self.bridge):
            if wire is not None and wire.accepted:
                problems.append(f"tripwire {wire.host}:{wire.port} accepted {wire.accepted}")
        if not self.host_dir.is_dir() or tree_hash(self.host_dir) != self.tree_hash:
            problems.append(f"host directory {self.host_dir} changed")
        try:
            if self.file_path.read_text(encoding="utf-8").strip() != self.file_value:
                problems.append(f"secret file {self.file_path} changed")
        except OSError as exc:
            problems.append(f"secret file {self.file_path} unreadable: {exc}")
        return problems

    def close(self) -> None:
        self.loopback.close()
        if self.bridge is not None:
            self.bridge.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Canaries:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
