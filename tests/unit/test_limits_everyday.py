"""Limits in the daemon's config: whole numbers only, never below what a sandbox needs."""

from __future__ import annotations

import pytest

from executor.daemon import config
from executor.daemon.errors import ConfigError
from proto.limits import LIMIT_MINIMUMS, LimitValueError, check_minimum


@pytest.mark.parametrize(
    ("flat", "message"),
    [
        (
            {"default_wall_time_ms": 1.5},
            "default_wall_time_ms: must be a whole number, got float 1.5",
        ),
        ({"max_pids": True}, "max_pids: must be a whole number, got bool True"),
        ({"max_pids": "1.5"}, "max_pids: must be a whole number, got str '1.5'"),
    ],
)
def test_config_limits_are_whole_numbers(flat: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.from_flat(flat)


def test_config_limits_from_flags_and_env_are_digits() -> None:
    cfg = config.from_flat({"default_pids": "16", "max_pids": 64})
    assert (cfg.default_limits.pids, cfg.max_limits.pids) == (16, 64)


def test_config_defaults_below_the_minimum_are_refused() -> None:
    with pytest.raises(ConfigError, match="default_memory_bytes=1000 is below the minimum of"):
        config.validate(config.from_flat({"default_memory_bytes": 1000}))


def test_check_minimum_names_the_minimum_and_allows_zero() -> None:
    check_minimum("pids", 0)  # 0 = the default
    check_minimum("pids", LIMIT_MINIMUMS["pids"])
    with pytest.raises(LimitValueError, match="pids=15 is below the minimum of 16") as info:
        check_minimum("pids", 15)
    assert info.value.name == "pids"
