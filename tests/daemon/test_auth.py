"""Bearer-token identification (unit level; the gRPC path is in test_server_basics)."""

from __future__ import annotations

import pytest

from executor.daemon.auth import ANONYMOUS, Authenticator
from executor.daemon.errors import Unauthenticated

TOKENS = {"alice": "alice-secret-0123456789", "bob": "bob-secret-0123456789xx"}


def test_no_tokens_means_anonymous():
    assert Authenticator({}).identify([]) == ANONYMOUS


def test_token_name_is_the_identity():
    auth = Authenticator(TOKENS)
    assert auth.identify([("authorization", "Bearer alice-secret-0123456789")]) == "alice"
    assert auth.identify([("Authorization", "bearer bob-secret-0123456789xx")]) == "bob"


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ([], "missing credentials"),
        ([("authorization", "Basic abc")], "must be 'Bearer <token>'"),
        ([("authorization", "Bearer alice-secret-012345678")], "invalid token"),
        ([("authorization", "Bearer ")], "invalid token"),
    ],
)
def test_rejections_say_how_to_fix(metadata, message):
    with pytest.raises(Unauthenticated, match=message):
        Authenticator(TOKENS).identify(metadata)
