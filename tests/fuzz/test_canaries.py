"""Host canaries: leaks are found in text, tripwires count connections, a changed directory is seen."""

from __future__ import annotations

import socket
import time

from executor.fuzz.canaries import CANARY_ENV, Canaries


def test_leaks_find_each_secret_and_only_those() -> None:
    with Canaries(bridge=False) as c:
        assert c.leaks("nothing here") == []
        assert c.leaks(f"x{c.env_value}y") == ["env secret"]
        assert c.leaks(c.file_path.read_text()) == ["file secret"]
        assert c.daemon_env() == {CANARY_ENV: c.env_value}
        assert c.host_problems() == []


def test_tripwire_counts_a_connection() -> None:
    with Canaries(bridge=False) as c:
        with socket.create_connection(("127.0.0.1", c.loopback.port), timeout=2):
            pass
        deadline = time.monotonic() + 5
        while not c.host_problems() and time.monotonic() < deadline:
            time.sleep(0.05)
        (problem,) = c.host_problems()
        assert "tripwire" in problem


def test_changes_to_the_host_directory_and_secret_file_are_seen() -> None:
    with Canaries(bridge=False) as c:
        (c.host_dir / "sub" / "new.txt").write_text("x")
        c.file_path.write_text("changed")
        problems = c.host_problems()
        assert any("host directory" in p for p in problems)
        assert any("secret file" in p for p in problems)


def test_placeholders_cover_every_corpus_placeholder_and_cleanup_removes_files() -> None:
    from executor.fuzz.corpus import PLACEHOLDERS

    c = Canaries(bridge=False)
    assert set(c.placeholders()) == set(PLACEHOLDERS)
    root = c.root
    c.close()
    assert not root.exists()
