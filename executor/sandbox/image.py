"""Build the sandbox image, tagged by the hash of everything that goes into it.

`ensure_image()` is what tests, the daemon and `corrald build-image` call: it
returns ``corral-sandbox:<content-hash>`` and builds only when that tag is
missing, so a rebuild with nothing changed is a no-op.

Where the image comes from, step by step:

1. The base: ``python:3.11-slim`` when the engine has it or can pull it (the
   pull is bounded by a timeout). Otherwise a minimal Debian bookworm root
   filesystem built with debootstrap by ``sandbox_images/build_base.sh`` and
   ``docker import``-ed as ``corral-base:bookworm`` (the tarball is cached, so
   this happens once per machine). This keeps the build working where no
   registry answers.
2. The wheels in ``sandbox_images/requirements.txt``, downloaded on the host
   with ``pip download --only-binary=:all:`` for CPython 3.11 manylinux (cached
   too). The image build never touches a package index.
   An operator adds packages with ``corrald build-image --requirements FILE``
   (same format: exact pins, every dependency listed); the file's pins join
   the image's, and its content is part of the hash. ``corrald build-image
   --list`` prints what an image holds (its ``io.corral.packages`` label).
3. The Corral sources the sandbox needs (``executor/interpreter``,
   ``executor/runner`` and the standard-library modules of ``proto/``): the
   last, fast layer.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from executor.sandbox import IMAGE_REPO

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO_ROOT / "sandbox_images"
DOCKERFILE = IMAGE_DIR / "Dockerfile"
REQUIREMENTS = IMAGE_DIR / "requirements.txt"
INSTALLER = IMAGE_DIR / "install_wheels.py"
SITE_HOOK = IMAGE_DIR / "corral_site.py"  # copied to /opt/corral/corral_site.py
BASE_BUILDER = IMAGE_DIR / "build_base.sh"

DEFAULT_BASE = "python:3.11-slim"
FALLBACK_BASE = "corral-base:bookworm"  # debootstrapped, docker-imported
PULL_TIMEOUT_S = 120
BUILD_TIMEOUT_S = 1800
LABEL_BASE = "io.corral.base"
LABEL_HASH = "io.corral.content-hash"
LABEL_PACKAGES = "io.corral.packages"  # the pins installed, one per line

# Sources copied into the image, relative to the repository root: the runner, the
# interpreter, and the standard-library half of the protocol they speak (not the
# generated gRPC modules, which need protobuf and are only used outside the sandbox).
SOURCE_FILES = (
    "executor/__init__.py",
    "proto/__init__.py",
    "proto/frames.py",
    "proto/imports.py",
    "proto/limits.py",
    "proto/values.py",
    "proto/results.py",
    "proto/tools.py",
)
SOURCE_TREES = ("executor/interpreter", "executor/runner")

PLATFORM_ARGS = (
    "--only-binary=:all:",
    "--no-deps",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
    # numpy/pandas publish manylinux_2_28 (glibc 2.28) wheels; bookworm has 2.36.
    "--platform",
    "manylinux_2_28_x86_64",
    "--platform",
    "manylinux_2_17_x86_64",
    "--platform",
    "manylinux2014_x86_64",
)


class ImageError(Exception):
    """The sandbox image could not be built; the message says what to do."""


def cache_dir() -> Path:
    """Where wheels and the debootstrap tarball are kept between builds."""
    root = os.environ.get("CORRAL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "corral"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _source_paths() -> list[Path]:
    paths = [REPO_ROOT / f for f in SOURCE_FILES]
    for tree in SOURCE_TREES:
        for p in sorted((REPO_ROOT / tree).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
                paths.append(p)
    return sorted(paths)


def _parse_requirements(text: str, *, where: str) -> list[str]:
    """Exact pins (`name==version`), one a line, `#` comments; anything else is refused."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if (
            not sep
            or not _PIN_NAME.fullmatch(name.strip())
            or not _PIN_VERSION.fullmatch(version.strip())
        ):
            raise ImageError(
                f"{where}:{number}: {line[:100]!r} is not an exact pin; write one "
                "`package==version` a line (no ranges, URLs or options), and list every "
                "dependency too: wheels are downloaded with --no-deps"
            )
        lines.append(f"{name.strip()}=={version.strip()}")
    return lines


def _requirements(extra: Path | None = None) -> list[str]:
    """The image's pins, then an operator's extra pins (a package pinned twice is refused)."""
    lines = _parse_requirements(REQUIREMENTS.read_text(), where=str(REQUIREMENTS))
    if extra is not None:
        try:
            text = extra.read_text()
        except OSError as exc:
            raise ImageError(f"cannot read the requirements file {extra}: {exc}") from None
        have = {line.split("==")[0].lower().replace("_", "-") for line in lines}
        for pin in _parse_requirements(text, where=str(extra)):
            if pin.split("==")[0].lower().replace("_", "-") in have:
                raise ImageError(
                    f"{extra}: {pin!r} is already pinned by the image "
                    f"({REQUIREMENTS.name}); remove it from {extra.name}"
                )
            lines.append(pin)
    return lines


_PIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_PIN_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]{0,63}")


def content_hash(base: str | None = None, extra: Path | None = None) -> str:
    """Hash of the Dockerfile, installer, pinned wheels, sources, requested base and extras."""
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(label.encode() + b"\0" + len(data).to_bytes(8, "big") + data)

    add("base", (base or "auto").encode())
    for p in (DOCKERFILE, INSTALLER, REQUIREMENTS, SITE_HOOK):
        add(p.name, p.read_bytes())
    if extra is not None:
        add("extra-requirements", "\n".join(_requirements(extra)).encode())
    for p in _source_paths():
        add(str(p.relative_to(REPO_ROOT)), p.read_bytes())
    return h.hexdigest()[:16]


def image_tag(base: str | None = None, extra: Path | None = None) -> str:
    return f"{IMAGE_REPO}:{content_hash(base, extra)}"


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time per machine: parallel test runs share the result."""
    with open(cache_dir() / "build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _docker_client(client: Any = None) -> Any:
    if client is not None:
        return client
    import docker

    try:
        return docker.from_env()
    except docker.errors.DockerException as exc:
        raise ImageError(
            f"cannot reach the Docker engine ({exc}); start Docker or set DOCKER_HOST"
        ) from exc


def _has_image(client: Any, ref: str) -> bool:
    import docker

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def _log(msg: str) -> None:
    print(f"corral build-image: {msg}", file=sys.stderr, flush=True)


def _try_pull(client: Any, ref: str, timeout: float = PULL_TIMEOUT_S) -> bool:
    """Pull `ref`, giving up after `timeout` seconds (no registry may answer)."""
    repo, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "latest")
    result: dict[str, bool] = {"ok": False}

    def pull() -> None:
        try:
            client.images.pull(repo, tag=tag)
            result["ok"] = True
        except Exception as exc:  # any failure means "not pullable"
            _log(f"cannot pull {ref}: {str(exc).splitlines()[0][:200]}")

    worker = threading.Thread(target=pull, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        _log(f"pull of {ref} did not finish within {timeout:.0f}s; giving up")
        return False
    return result["ok"]


def _debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line sources)."""
    candidates = [Path("/etc/apt/sources.list")]
    src_dir = Path("/etc/apt/sources.list.d")
    if src_dir.is_dir():
        candidates += sorted(src_dir.iterdir())
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            urls = []
            if words[0] == "URIs:":
                urls = words[1:]
            elif words[0] == "deb":
                urls = [w for w in words[1:] if "://" in w][:1]
            for url in urls:
                if url.rstrip("/").endswith("/debian"):
                    return url
    return "http://deb.debian.org/debian"


def build_fallback_base(client: Any) -> str:
    """Make `corral-base:bookworm` from a debootstrapped rootfs (cached tarball)."""
    if _has_image(client, FALLBACK_BASE):
        return FALLBACK_BASE
    tarball = cache_dir() / "base-bookworm.tar"
    if not tarball.exists():
        if os.geteuid() != 0:
            raise ImageError(
                "no base image is available and debootstrap needs root: run "
                "`sudo corrald build-image`, or load python:3.11-slim with `docker load`"
            )
        mirror = _debian_mirror()
        _log(f"building a Debian bookworm root filesystem with debootstrap from {mirror}")
        proc = subprocess.run(
            ["bash", str(BASE_BUILDER), str(tarball), mirror],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
        if proc.returncode != 0:
            raise ImageError(
                f"debootstrap failed (exit {proc.returncode}); last output:\n"
                + "\n".join(proc.stderr.splitlines()[-20:])
                + "\nCheck that the Debian mirror is reachable, or provide a base with --base."
            )
    _log(f"importing {tarball} as {FALLBACK_BASE}")
    repo, tag = FALLBACK_BASE.split(":")
    client.api.import_image_from_file(
        str(tarball),
        repository=repo,
        tag=tag,
        changes=["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    )
    if not _has_image(client, FALLBACK_BASE):
        raise ImageError(f"docker import of {tarball} did not produce {FALLBACK_BASE}")
    return FALLBACK_BASE


def resolve_base(client: Any, base: str | None) -> str:
    """The base image to build FROM: the requested one, else slim Python, else debootstrap."""
    if base is not None:
        if base == FALLBACK_BASE:
            return build_fallback_base(client)
        if _has_image(client, base) or _try_pull(client, base):
            return base
        raise ImageError(
            f"base image {base!r} is neither present nor pullable; `docker load` it, or omit "
            "--base to fall back to a debootstrapped Debian base"
        )
    if _has_image(client, DEFAULT_BASE) or _try_pull(client, DEFAULT_BASE, timeout=30):
        return DEFAULT_BASE
    return build_fallback_base(client)


def fetch_wheels(extra: Path | None = None) -> Path:
    """Download the pinned wheels on the host into the cache (once per pin set)."""
    reqs = _requirements(extra)
    key = hashlib.sha256("\n".join(reqs).encode()).hexdigest()[:12]
    dest = cache_dir() / "wheels" / key
    if (dest / ".complete").exists():
        return dest
    tmp = Path(tempfile.mkdtemp(prefix="wheels-", dir=cache_dir()))
    try:
        _log(f"downloading {len(reqs)} pinned wheels")
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", *PLATFORM_ARGS, "-d", str(tmp), *reqs],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
        if proc.returncode != 0:
            raise ImageError(
                "pip download of the sandbox wheels failed; the host needs access to a "
                "package index (or a pip find-links directory) once. pip said:\n"
                + proc.stderr[-2000:]
            )
        got = sorted(p.name for p in tmp.glob("*.whl"))
        if len(got) != len(reqs):
            raise ImageError(
                f"expected {len(reqs)} wheels for {reqs}, got {got}: "
                "sandbox_images/requirements.txt (and a --requirements file) must list "
                "every dependency"
            )
        (tmp / ".complete").write_text("\n".join(got) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _assemble_context(ctx: Path, wheels: Path) -> None:
    shutil.copy2(DOCKERFILE, ctx / "Dockerfile")
    shutil.copy2(INSTALLER, ctx / "install_wheels.py")
    (ctx / "wheels").mkdir()
    for whl in sorted(wheels.glob("*.whl")):
        shutil.copy2(whl, ctx / "wheels" / whl.name)
    (ctx / "corral").mkdir()
    shutil.copy2(SITE_HOOK, ctx / "corral" / SITE_HOOK.name)
    for p in _source_paths():
        rel = p.relative_to(REPO_ROOT)
        dest = ctx / "corral" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dest)


def _build(
    client: Any,
    base: str,
    tag: str,
    digest: str,
    *,
    nocache: bool = False,
    extra: Path | None = None,
) -> None:
    wheels = fetch_wheels(extra)
    packages = "\n".join(_requirements(extra))
    with tempfile.TemporaryDirectory(prefix="corral-ctx-", dir=cache_dir()) as tmp:
        ctx = Path(tmp)
        _assemble_context(ctx, wheels)
        _log(f"building {tag} from {base}")
        lines: list[str] = []
        error = None
        for chunk in client.api.build(
            path=str(ctx),
            tag=tag,
            buildargs={"BASE": base},
            labels={LABEL_BASE: base, LABEL_HASH: digest, LABEL_PACKAGES: packages},
            rm=True,
            forcerm=True,
            nocache=nocache,
            decode=True,
        ):
            if "stream" in chunk:
                text = str(chunk["stream"]).rstrip()
                if text:
                    lines.append(text)
                    if os.environ.get("CORRAL_BUILD_VERBOSE"):
                        _log(text)
            if "error" in chunk:
                error = str(chunk["error"])
        if error is not None or not _has_image(client, tag):
            raise ImageError(f"docker build of {tag} failed: {error}\n" + "\n".join(lines[-30:]))


def ensure_image(
    *,
    rebuild: bool = False,
    client: Any = None,
    base: str | None = None,
    requirements: Path | None = None,
) -> str:
    """Return the tag 'corral-sandbox:<content-hash>' of a built image, building it when missing.

    Also tags 'corral-sandbox:latest'. The hash covers the Dockerfile, the
    pinned wheel list, the wheel installer, the Corral sources copied in and
    the requested base, so a call with nothing changed returns at once.
    `requirements` names an operator's file of extra pins (`--requirements`).
    """
    client = _docker_client(client)
    digest = content_hash(base, requirements)
    tag = f"{IMAGE_REPO}:{digest}"
    if rebuild or not _has_image(client, tag):
        with _build_lock():
            if rebuild or not _has_image(client, tag):  # another process may have built it
                resolved = resolve_base(client, base)
                _build(client, resolved, tag, digest, extra=requirements)
    image = client.images.get(tag)
    if f"{IMAGE_REPO}:latest" not in (image.tags or []):
        image.tag(IMAGE_REPO, "latest")
    return tag


def prune_images(client: Any, keep: str) -> list[str]:
    """Remove older `corral-sandbox:<hash>` tags (every source edit makes one).

    The engine refuses to remove an image a container still uses; those stay.
    Only the operator runs this (`build-image --prune`): a test run holding an
    older tag would otherwise lose its image mid-run.
    """
    import docker

    removed = []
    for img in client.images.list(name=IMAGE_REPO):
        if keep in img.tags:
            continue
        for tag in img.tags:
            if tag.startswith(f"{IMAGE_REPO}:") and tag != f"{IMAGE_REPO}:latest":
                try:
                    client.images.remove(tag)
                    removed.append(tag)
                except docker.errors.APIError:
                    pass  # in use by a container
    return removed


def image_packages(client: Any, ref: str) -> list[str]:
    """The pins installed in image `ref` (its `io.corral.packages` label)."""
    import docker

    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        raise ImageError(
            f"no image {ref!r}; build it with `corrald build-image` (add --requirements "
            "FILE for extra packages)"
        ) from None
    labels = image.labels or {}
    if LABEL_PACKAGES not in labels:
        raise ImageError(f"{ref} was built by an older Corral: it has no {LABEL_PACKAGES} label")
    return [line for line in str(labels[LABEL_PACKAGES]).splitlines() if line]


def _cmd_build_image(args: argparse.Namespace) -> int:
    extra = Path(args.requirements) if args.requirements else None
    try:
        if args.list:
            ref = args.image or image_tag(args.base, extra)
            client = _docker_client(None)
            image = client.images.get(ref) if _has_image(client, ref) else None
            pins = image_packages(client, ref)
            print(f"{ref}  (base {image.labels.get(LABEL_BASE, '?') if image else '?'})")
            for pin in pins:
                print(f"  {pin}")
            return 0
        tag = ensure_image(rebuild=args.rebuild, base=args.base, requirements=extra)
    except ImageError as exc:
        print(f"corrald build-image: {exc}", file=sys.stderr)
        return 1
    if args.prune:
        import docker

        for old in prune_images(docker.from_env(), keep=tag):
            _log(f"removed {old}")
    print(tag)
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `corrald build-image [--rebuild] [--base IMAGE] [--requirements FILE] [--list]`."""
    p = subparsers.add_parser(
        "build-image",
        help="build the sandbox image (debootstrap base when nothing can be pulled)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rebuild", action="store_true", help="build even if the tag exists")
    p.add_argument(
        "--base",
        default=None,
        help=f"base image (default: {DEFAULT_BASE} if present or pullable, else "
        f"{FALLBACK_BASE} built with debootstrap)",
    )
    p.add_argument(
        "--prune", action="store_true", help="remove older corral-sandbox:<hash> tags afterwards"
    )
    p.add_argument(
        "--requirements",
        metavar="FILE",
        default=os.environ.get("CORRALD_IMAGE_REQUIREMENTS") or None,
        help="extra exact pins (`package==version`, every dependency listed) to install "
        "besides sandbox_images/requirements.txt; part of the content hash "
        "[env CORRALD_IMAGE_REQUIREMENTS]",
    )
    p.add_argument(
        "--list",
        action="store_true",
        help="print the packages of the image (this tree's tag, or --image) and exit",
    )
    p.add_argument("--image", default=None, help="with --list: the image to describe")
    p.set_defaults(func=_cmd_build_image)
