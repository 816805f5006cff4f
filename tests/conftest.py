"""Fixtures for tests against real servers: a private Dovecot and a recording SMTP server.

Without Dovecot installed the server tests are skipped locally, but fail when the
``CI`` environment variable is set: CI must never pass by skipping them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.dovecot import Dovecot, User, require_dovecot
from tests.support.smtp import RecordingSMTP

DOVECOT_FIXTURES = {"dovecot", "imap_user", "dovecot_factory"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a Dovecot, so ``-m "not dovecot"`` leaves them out."""
    for item in items:
        if DOVECOT_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.dovecot)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One private Dovecot for the whole session; tests isolate themselves by user."""
    require_dovecot()
    server = Dovecot()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def imap_user(dovecot: Dovecot) -> User:
    """A fresh account (empty INBOX) on the session's Dovecot."""
    return dovecot.add_user()


@pytest.fixture(scope="session")
def _default_capabilities(dovecot: Dovecot) -> list[str]:
    return dovecot.capabilities(dovecot.add_user())


DovecotFactory = Callable[..., Dovecot]


@pytest.fixture
def dovecot_factory(dovecot: Dovecot, _default_capabilities: list[str]) -> Iterator[DovecotFactory]:
    """Start extra Dovecots, stopped after the test.

    ``make(without=("MOVE",))`` advertises the default capabilities minus some;
    ``make(separator=".", prefix="INBOX.", special_use={...})`` shapes the namespace;
    ``make(capability="IMAP4rev1 ...")`` replaces the list; ``make(tls=True)`` adds TLS.
    """
    started: list[Dovecot] = []

    def make(*, capability: str | None = None, without: tuple[str, ...] = (), tls: bool = False,
             **layout: Any) -> Dovecot:
        if without:
            dropped = {name.upper() for name in without}
            capability = " ".join(cap for cap in _default_capabilities if cap.upper() not in dropped)
        server = Dovecot(capability=capability, tls=tls, **layout)
        started.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[RecordingSMTP]:
    """A recording SMTP server shared by the session; call ``clear()`` before counting."""
    with RecordingSMTP() as server:
        yield server


@pytest.fixture
def smtp_factory() -> Iterator[Callable[..., RecordingSMTP]]:
    """Private SMTP servers (``credentials=(user, pw)`` to require AUTH; ``stop()`` for "down")."""
    started: list[RecordingSMTP] = []

    def make(*, credentials: tuple[str, str] | None = None) -> RecordingSMTP:
        server = RecordingSMTP(credentials=credentials)
        started.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in started:
            server.stop()
