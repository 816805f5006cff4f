"""Fixtures of the robustness tests: accounts on the session's Dovecot that can log in immediately."""

from __future__ import annotations

import pytest

from tests.robustness.harness import PASSWORD_ENV, UserPool
from tests.support.dovecot import Dovecot, User


@pytest.fixture(scope="session")
def user_pool(dovecot: Dovecot) -> UserPool:
    return UserPool(dovecot)


@pytest.fixture
def fresh_user(user_pool: UserPool, monkeypatch: pytest.MonkeyPatch) -> User:
    """An empty account whose password ``mailrules`` finds in its environment variable."""
    user = user_pool.take()
    monkeypatch.setenv(PASSWORD_ENV, user.password)
    return user
