"""The seccomp profile is generated from its readable policy, and the policy holds together.

No Docker here: these check the committed files and the generator/recorder logic.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections import Counter

import pytest

from executor.sandbox.hardening import SECCOMP_PROFILE_PATH
from executor.sandbox.seccomp_tool import (
    POLICY_PATH,
    PROBES,
    RECORD_SNIPPETS,
    ProfileView,
    SeccompToolError,
    build_profile,
    generate,
    judge,
    load_policy,
    parse_strace,
    record,
)

REQUIRED_DENIALS = {
    "ptrace",
    "mount",
    "umount2",
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "personality",
    "clone3",
}


def test_committed_profile_equals_a_fresh_generation() -> None:
    assert SECCOMP_PROFILE_PATH.read_text() == generate(), (
        "profile.json is stale: run `corrald seccomp generate`"
    )


def test_generation_is_deterministic() -> None:
    assert generate() == generate()


def test_default_action_is_eperm() -> None:
    profile = json.loads(SECCOMP_PROFILE_PATH.read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["defaultErrnoRet"] == 1


def test_required_denials_are_not_allowed_unconditionally() -> None:
    view = ProfileView.load()
    assert not (REQUIRED_DENIALS & view.allowed)
    for name in ("socket", "socketpair", "clone", "personality"):
        assert name not in view.allowed, name
        assert name in view.conditional, name
    assert view.errno_rules == {"clone3": 38}


def test_socket_is_allowed_only_for_af_unix() -> None:
    profile = json.loads(SECCOMP_PROFILE_PATH.read_text())
    rules = [r for r in profile["syscalls"] if "socket" in r["names"]]
    assert len(rules) == 1
    assert rules[0]["args"] == [{"index": 0, "value": 1, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]


def test_clone_rule_masks_every_namespace_flag() -> None:
    profile = json.loads(SECCOMP_PROFILE_PATH.read_text())
    (rule,) = [r for r in profile["syscalls"] if r["names"] == ["clone"]]
    (arg,) = rule["args"]
    ns_flags = 0x20000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000
    ns_flags |= 0x40000000
    assert arg["op"] == "SCMP_CMP_MASKED_EQ"
    assert arg["value"] == ns_flags
    assert arg["valueTwo"] == 0


def test_every_deny_entry_has_a_reason() -> None:
    policy = load_policy()
    assert set(policy["deny"]) >= REQUIRED_DENIALS
    for name, reason in policy["deny"].items():
        assert isinstance(reason, str) and len(reason) > 5, name


def test_a_rule_without_a_deny_entry_is_rejected() -> None:
    policy = copy.deepcopy(load_policy())
    policy["rule"].append({"name": "getpid", "action": "SCMP_ACT_ALLOW", "reason": "x", "args": []})
    with pytest.raises(SeccompToolError, match="must also be listed in \\[deny\\]"):
        build_profile(policy)


def test_a_deny_entry_without_a_reason_is_rejected() -> None:
    policy = copy.deepcopy(load_policy())
    policy["deny"]["ptrace"] = ""
    with pytest.raises(SeccompToolError, match="needs a reason"):
        build_profile(policy)


def test_policy_file_is_where_the_tool_reads_it() -> None:
    assert POLICY_PATH.name == "policy.toml"
    assert POLICY_PATH.parent == SECCOMP_PROFILE_PATH.parent


def test_every_probe_label_is_unique_and_every_required_denial_is_probed() -> None:
    labels = [p[0] for p in PROBES]
    assert len(labels) == len(set(labels))
    probed = {label.split("(")[0].split(" ")[0] for label in labels}
    assert probed >= REQUIRED_DENIALS


STRACE_SAMPLE = """\
101   execve("/usr/bin/python3", ["python3"], 0x7ffd /* 5 vars */) = 0
101   openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3
101   clone3({flags=CLONE_VM|CLONE_FS, exit_signal=0, stack=0x7f}, 88) = 102
102   set_robust_list(0x7f, 24 <unfinished ...>
101   <... openat resumed>) = 4
101   socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0) = 5
101   socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 6
101   clone(child_stack=NULL, flags=CLONE_NEWNET|SIGCHLD) = 103
101   keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) = 1
101   +++ exited with 0 +++
"""


def test_parse_strace_counts_calls_not_resumptions() -> None:
    counts, notable = parse_strace(STRACE_SAMPLE)
    assert counts["openat"] == 1
    assert counts["socket"] == 2
    assert counts["set_robust_list"] == 1
    assert any(n.startswith("socket(AF_INET") for n in notable)


def test_judge_reports_what_the_profile_would_deny() -> None:
    counts, notable = parse_strace(STRACE_SAMPLE)
    problems = judge(counts, notable, ProfileView.load())
    text = "\n".join(problems)
    assert "keyctl: denied" in text
    assert "non-AF_UNIX socket denied: socket(AF_INET" in text
    assert "clone with namespace flags denied" in text
    assert "clone3" not in text  # ENOSYS with a clone fallback is expected
    assert "openat" not in text and "AF_UNIX, SOCK_STREAM" not in text


def test_judge_is_quiet_for_an_allowed_trace() -> None:
    counts = Counter({"read": 3, "write": 2, "futex": 1, "mmap": 4})
    assert judge(counts, [], ProfileView.load()) == []


def _need_strace() -> None:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (apt-get install strace)")


@pytest.mark.slow
def test_record_raw_runner_workload_needs_nothing_the_profile_denies() -> None:
    """The runner in raw CPython mode under strace (numpy, pandas, errors): nothing denied."""
    _need_strace()
    report = record(raw=True)
    assert report.answers["ready"] == 1
    assert report.answers["result"] == len(RECORD_SNIPPETS)
    assert report.counts["execve"] >= 1 and report.counts["read"] > 0
    assert report.problems == []


@pytest.mark.slow
def test_record_interpreter_runner_workload_needs_nothing_the_profile_denies() -> None:
    """The runner with the restricted interpreter under strace: nothing denied."""
    _need_strace()
    report = record()
    assert report.answers["ready"] == 1
    assert report.counts["execve"] >= 1 and report.counts["read"] > 0
    assert report.problems == []


def test_tolerated_entries_are_really_denied_and_explained() -> None:
    policy = load_policy()
    view = ProfileView.load()
    for name, why in policy.get("tolerated", {}).items():
        assert name not in view.allowed and name not in view.conditional, name
        assert len(why) > 10, name
