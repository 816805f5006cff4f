"""Fixtures of the robustness tests."""

from __future__ import annotations

import pytest

from tests.robustness.harness import PASSWORD_ENV
from tests.support.dovecot import Dovecot, User


@pytest.fixture
def fresh_user(dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> User:
    """An empty account whose password ``mailrules`` finds in its environment variable."""
    user = dovecot.add_user()
    monkeypatch.setenv(PASSWORD_ENV, user.password)
    return user
