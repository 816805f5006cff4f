"""Fixtures for tests against real servers: private Dovecot and Cyrus IMAP instances and a recording SMTP server.

Without a server installed its tests are skipped locally, but fail when the ``CI``
environment variable is set: CI must never pass by skipping them.

Markers come from the fixtures a test uses (``dovecot``, ``cyrus``), so ``-m "not
dovecot and not cyrus"`` leaves out every test that starts an IMAP server; a test that
starts one without such a fixture fails, so nothing escapes the markers.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mailrules.lock import LOCK_DIR_ENV
from tests.support.cyrus import DEBIAN_DEFAULT, UPSTREAM_DEFAULT, Cyrus, require_cyrus
from tests.support.dovecot import Dovecot, User, require_dovecot
from tests.support.servers import Account, ServerUnderTest, cyrus_accounts, dovecot_accounts
from tests.support.smtp import RecordingSMTP

SERVER_FIXTURES = {
    "dovecot": {"dovecot", "imap_user", "dovecot_factory"},
    "cyrus": {"cyrus_default", "cyrus_alt", "cyrus_factory"},
}
# Where every server start is recorded (test id, class), when set: lets a test check
# which tests of a selection start servers.
START_LOG_ENV = "MAILRULES_TEST_SERVER_LOG"
SERVER_CLASSES: dict[str, type] = {"dovecot": Dovecot, "cyrus": Cyrus}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cyrus: needs a private Cyrus IMAP (unpacked by scripts/install-servers)")
    for marker, cls in SERVER_CLASSES.items():
        if not hasattr(cls.start, "_marker_guard"):
            cls.start = _guarded_start(marker, cls.start)  # type: ignore[method-assign]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test by the servers its fixtures start, so ``-m "not dovecot"`` leaves them out;
    leave out the long sweeps unless the marker expression names them (``-m slow``)."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in SERVER_FIXTURES.items():
            if fixtures & used:
                item.add_marker(marker)
    if "slow" not in (config.getoption("markexpr") or ""):
        slow = [item for item in items if item.get_closest_marker("slow")]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if not item.get_closest_marker("slow")]


class _Running:
    """The markers of the test being set up, run or torn down (None between tests)."""

    markers: set[str] | None = None
    nodeid = ""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    _Running.markers = {mark.name for mark in item.iter_markers()}
    _Running.nodeid = item.nodeid
    try:
        yield
    finally:
        _Running.markers = None


def _guarded_start(marker: str, start: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(start)
    def guarded(self: Any) -> Any:
        log = os.environ.get(START_LOG_ENV)
        if log:
            with open(log, "a", encoding="utf-8") as out:
                out.write(f"{_Running.nodeid} {type(self).__name__}\n")
        if _Running.markers is not None and marker not in _Running.markers:
            raise RuntimeError(f"{_Running.nodeid} starts a {type(self).__name__} without being marked "
                               f"{marker!r}: ask for one of the fixtures {sorted(SERVER_FIXTURES[marker])}")
        return start(self)

    guarded._marker_guard = True  # type: ignore[attr-defined]
    return guarded


@pytest.fixture(scope="session", autouse=True)
def _session_lock_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Mailbox locks and owner files of this session only: a later session reuses ports and user names."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(LOCK_DIR_ENV, str(tmp_path_factory.mktemp("locks")))
        yield


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


def _cyrus(layout) -> Iterator[Cyrus]:  # type: ignore[no-untyped-def]
    require_cyrus()
    with Cyrus(layout) as server:
        yield server


@pytest.fixture(scope="session")
def cyrus_default() -> Iterator[Cyrus]:
    """One private Cyrus in Debian's layout (``INBOX.`` prefix, ``.`` separator) for the session."""
    yield from _cyrus(DEBIAN_DEFAULT)


@pytest.fixture(scope="session")
def cyrus_alt() -> Iterator[Cyrus]:
    """One private Cyrus in the upstream layout (altnamespace, ``/`` separator) for the session."""
    yield from _cyrus(UPSTREAM_DEFAULT)


@pytest.fixture
def cyrus_factory() -> Iterator[Callable[..., Cyrus]]:
    """Start extra Cyrus instances (``make(layout, suppress_capabilities=...)``), stopped after the test."""
    require_cyrus()
    started: list[Cyrus] = []

    def make(layout=DEBIAN_DEFAULT, *, suppress_capabilities: tuple[str, ...] = ()) -> Cyrus:  # type: ignore[no-untyped-def]
        server = Cyrus(layout, suppress_capabilities=suppress_capabilities)
        started.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture(params=[
    pytest.param("dovecot", marks=pytest.mark.dovecot),
    pytest.param("cyrus-default", marks=pytest.mark.cyrus),
    pytest.param("cyrus-alt", marks=pytest.mark.cyrus),
])
def imap_server(request: pytest.FixtureRequest) -> ServerUnderTest:
    """Each IMAP server of the suite in turn; only the one a test runs on is started."""
    kind = request.param
    if kind == "dovecot":
        accounts = dovecot_accounts(request.getfixturevalue("dovecot"), request.getfixturevalue("dovecot_factory"))
    else:
        accounts = cyrus_accounts(request.getfixturevalue("cyrus_default" if kind == "cyrus-default" else "cyrus_alt"))
    return ServerUnderTest(kind, accounts)


@pytest.fixture
def any_imap_user(imap_server: ServerUnderTest) -> Account:
    """A fresh account (empty INBOX) on each IMAP server of the suite in turn."""
    return imap_server.account()
