"""The sandbox image: content-hash tags, what it holds, and layer order."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from executor.sandbox import IMAGE_REPO, LABEL_INSTANCE
from executor.sandbox import image as image_mod
from executor.sandbox.seccomp_tool import run_snippet

# --- content hash (no Docker) ----------------------------------------------------------


@pytest.fixture
def source_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the sources the image holds, with the module pointed at it."""
    root = tmp_path / "repo"
    for rel in image_mod.SOURCE_FILES:  # executor/__init__.py and the proto/ modules
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(image_mod.REPO_ROOT / rel, root / rel)
    for tree in image_mod.SOURCE_TREES:
        shutil.copytree(
            image_mod.REPO_ROOT / tree, root / tree, ignore=shutil.ignore_patterns("__pycache__")
        )
    monkeypatch.setattr(image_mod, "REPO_ROOT", root)
    return root


def test_hash_is_stable_and_names_the_tag(source_copy: Path) -> None:
    first = image_mod.content_hash()
    assert first == image_mod.content_hash()
    assert image_mod.image_tag() == f"{IMAGE_REPO}:{first}"
    assert len(first) == 16


def test_hash_changes_with_a_runner_source(source_copy: Path) -> None:
    before = image_mod.content_hash()
    (source_copy / "executor" / "runner" / "extra_module.py").write_text("X = 1\n")
    assert image_mod.content_hash() != before


def test_hash_changes_with_an_interpreter_source(source_copy: Path) -> None:
    before = image_mod.content_hash()
    target = next((source_copy / "executor" / "interpreter").glob("*.py"))
    target.write_text(target.read_text() + "\n# changed\n")
    assert image_mod.content_hash() != before


def test_hash_ignores_bytecode_caches(source_copy: Path) -> None:
    before = image_mod.content_hash()
    cache = source_copy / "executor" / "runner" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "junk.cpython-311.pyc").write_bytes(b"\0" * 16)
    assert image_mod.content_hash() == before


def test_hash_ignores_host_only_code(source_copy: Path) -> None:
    before = image_mod.content_hash()
    (source_copy / "executor" / "daemon").mkdir()
    (source_copy / "executor" / "daemon" / "server.py").write_text("pass\n")
    assert image_mod.content_hash() == before


def test_hash_depends_on_the_requested_base() -> None:
    assert image_mod.content_hash("python:3.11-slim") != image_mod.content_hash(None)


def test_requirements_pin_exact_versions() -> None:
    reqs = image_mod._requirements()
    assert {r.split("==")[0].lower() for r in reqs} >= {"restrictedpython", "numpy", "pandas"}
    assert all("==" in r for r in reqs), reqs


def test_debian_mirror_comes_from_apt_sources() -> None:
    assert image_mod._debian_mirror().startswith(("http://", "https://"))
    assert image_mod._debian_mirror().rstrip("/").endswith("/debian")


# --- the built image (Docker) ----------------------------------------------------------


@pytest.mark.docker
def test_ensure_image_is_idempotent_and_tags_latest(docker_client: Any, sandbox_image: str) -> None:
    again = image_mod.ensure_image(client=docker_client)
    assert again == sandbox_image == image_mod.image_tag()
    built = docker_client.images.get(sandbox_image)
    assert docker_client.images.get(f"{IMAGE_REPO}:latest").id == built.id
    assert built.labels[image_mod.LABEL_HASH] == sandbox_image.split(":")[1]
    assert built.labels[image_mod.LABEL_BASE] in (image_mod.DEFAULT_BASE, image_mod.FALLBACK_BASE)


CONTENTS = """
import json, sys, importlib.metadata as md, numpy, pandas, RestrictedPython, executor
import proto.frames
print(json.dumps({
    "python": list(sys.version_info[:2]),
    "versions": {d: md.version(d) for d in ("numpy", "pandas", "RestrictedPython",
                                            "python-dateutil", "tzdata")},
    "executor": executor.__file__,
    "flags_isolated": sys.flags.isolated,
}))
"""


@pytest.mark.docker
def test_image_holds_python_311_corral_and_the_pinned_packages(
    docker_client: Any, sandbox_image: str, test_instance_id: str
) -> None:
    # `python3 -c` here; the runner starts with -I, which the next test covers.
    result = run_snippet(
        docker_client, sandbox_image, CONTENTS, labels={LABEL_INSTANCE: test_instance_id}
    )
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.text)
    assert out["python"] == [3, 11]
    pins = dict(r.split("==") for r in image_mod._requirements())
    pins_lower = {k.lower(): v for k, v in pins.items()}
    for dist, version in out["versions"].items():
        assert pins_lower[dist.lower()] == version, dist
    assert out["executor"] == "/opt/corral/executor/__init__.py"


@pytest.mark.docker
def test_packages_import_under_isolated_mode(
    docker_client: Any, sandbox_image: str, test_instance_id: str
) -> None:
    """`python3 -I` (the runner's command) ignores PYTHONPATH and cwd: corral.pth must work."""
    from docker.types import LogConfig

    from executor.sandbox.hardening import container_config
    from proto.limits import SessionLimits

    cfg = container_config(
        SessionLimits(),
        labels={LABEL_INSTANCE: test_instance_id},
        command=[
            "python3",
            "-I",
            "-c",
            "import numpy, pandas, proto.frames; print('ok')",
        ],
    )
    cfg.update(auto_remove=False, stdin_open=False, log_config=LogConfig(type="json-file"))
    container = docker_client.containers.create(sandbox_image, **cfg)
    try:
        container.start()
        assert container.wait(timeout=120)["StatusCode"] == 0
        assert container.logs(stdout=True, stderr=False).strip() == b"ok"
    finally:
        container.remove(force=True)


@pytest.mark.docker
@pytest.mark.slow
def test_a_source_change_rebuilds_only_the_last_layers(
    docker_client: Any, sandbox_image: str, source_copy: Path
) -> None:
    """The wheels and the base sit in layers that a source change reuses."""
    (source_copy / "executor" / "runner" / "extra_module.py").write_text("X = 1\n")
    base = docker_client.images.get(sandbox_image).labels[image_mod.LABEL_BASE]
    tag = f"{IMAGE_REPO}:test-{uuid.uuid4().hex[:8]}"
    try:
        image_mod._build(docker_client, base, tag, "test")
        old = docker_client.images.get(sandbox_image).attrs["RootFS"]["Layers"]
        new = docker_client.images.get(tag).attrs["RootFS"]["Layers"]
        assert len(old) == len(new)
        shared = sum(1 for a, b in zip(old, new) if a == b)
        assert shared >= len(old) - 2  # COPY of the sources and its compileall
        assert old[-1] != new[-1]
    finally:
        try:
            docker_client.images.remove(tag, noprune=False)
        except Exception:
            pass


# --- matplotlib, Pillow and operator packages (issue #13) ---------------------------------


def test_operator_requirements_join_the_pins_and_the_hash(tmp_path: Path) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text("# our plotting helpers\nseaborn==0.13.2  # pinned\n")
    assert image_mod._requirements(extra)[-1] == "seaborn==0.13.2"
    assert image_mod._requirements(extra)[:-1] == image_mod._requirements()
    first = image_mod.content_hash(None, extra)
    assert first != image_mod.content_hash()
    extra.write_text("seaborn==0.13.1\n")
    assert image_mod.content_hash(None, extra) != first


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("seaborn>=0.13\n", "not an exact pin"),
        ("seaborn\n", "not an exact pin"),
        ("--index-url http://evil/\n", "not an exact pin"),
        ("git+https://x/y.git\n", "not an exact pin"),
        ("numpy==1.0\n", "already pinned by the image"),
        ("Pillow==9.0\n", "already pinned by the image"),
    ],
)
def test_operator_requirements_must_be_exact_new_pins(tmp_path: Path, text: str, why: str) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text(text)
    with pytest.raises(image_mod.ImageError, match=why):
        image_mod._requirements(extra)


def test_a_missing_requirements_file_names_itself(tmp_path: Path) -> None:
    with pytest.raises(image_mod.ImageError, match="cannot read the requirements file"):
        image_mod._requirements(tmp_path / "nope.txt")


@pytest.mark.docker
def test_build_image_list_shows_the_packages_of_the_image(
    sandbox_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    image_mod.add_parser(parser.add_subparsers())
    args = parser.parse_args(["build-image", "--list", "--image", sandbox_image])
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(sandbox_image)
    assert {line.strip() for line in out[1:]} == set(image_mod._requirements())
    assert "  matplotlib==3.11.2" in out and "  pillow==13.0.0" in out


MPL_CHECK = """
import os, sys, time, warnings, logging
t0 = time.monotonic()
import matplotlib
import matplotlib.pyplot as plt
fig = plt.figure(figsize=(2, 2), dpi=50)
plt.plot([0, 1])
import io
buf = io.BytesIO()
fig.savefig(buf, format="png")
print(matplotlib.get_backend(), os.environ["MPLCONFIGDIR"], sorted(os.listdir(os.environ["MPLCONFIGDIR"])),
      buf.getvalue()[:4] == b"\\x89PNG", round(time.monotonic() - t0, 2))
"""


@pytest.mark.docker
def test_matplotlib_runs_with_a_read_only_root_and_no_font_rebuild(
    docker_client: Any, sandbox_image: str, test_instance_id: str
) -> None:
    """The font cache was built at image build time: no warning, no rescan per session."""
    from docker.types import LogConfig

    from executor.sandbox.hardening import container_config
    from proto.limits import SessionLimits

    cfg = container_config(
        SessionLimits(),
        labels={LABEL_INSTANCE: test_instance_id},
        command=["python3", "-I", "-c", MPL_CHECK],
    )
    cfg.update(auto_remove=False, stdin_open=False, log_config=LogConfig(type="json-file"))
    assert cfg.get("read_only") is True
    container = docker_client.containers.create(sandbox_image, **cfg)
    try:
        container.start()
        assert container.wait(timeout=180)["StatusCode"] == 0, container.logs()
        out = container.logs(stdout=True, stderr=False).decode()
        err = container.logs(stdout=False, stderr=True).decode()
        assert err == ""  # no "Matplotlib is building the font cache", no cache-dir warning
        words = out.split()
        assert words[0].lower() == "agg" and words[1] == "/tmp/matplotlib"
        assert "fontlist-v" in out and "True" in out  # the seeded cache; a PNG was made
    finally:
        container.remove(force=True)
