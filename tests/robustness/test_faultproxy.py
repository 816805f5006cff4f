"""The fault-injection proxy itself, against a real Dovecot: it must cut exactly where it is told."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from tests.support.dovecot import Dovecot, User
from tests.support.faultproxy import Command, Cut, FaultProxy, ImapSplitter

MESSAGE = (
    b"From: a@example.com\r\nTo: u@example.com\r\nSubject: proxy\r\nMessage-ID: <proxy@example.com>\r\n\r\n"
    b"a1 LOGOUT\r\nb2 UID EXPUNGE 1:*\r\n" + b"padding line\r\n" * 200
)
CONNECTION_ERRORS = (OSError, IMAPClient.Error, IMAPClient.AbortError)


@contextlib.contextmanager
def session(proxy: FaultProxy, user: User) -> Iterator[IMAPClient]:
    imap = IMAPClient(proxy.host, port=proxy.port, ssl=False, timeout=10)
    try:
        imap.login(user.username, user.password)
        yield imap
    finally:
        with contextlib.suppress(*CONNECTION_ERRORS):
            imap.logout()


def seen_on_server(dovecot: Dovecot, user: User) -> bool:
    with dovecot.client(user) as imap:
        imap.select_folder("INBOX", readonly=True)
        return b"\\Seen" in imap.get_flags([1])[1]


def test_splitter_gives_the_same_pieces_however_the_bytes_arrive() -> None:
    stream = b"a1 LOGIN u p\r\na2 APPEND INBOX {12}\r\nz9 LOGOUT\r\n (x)\r\na3 NOOP\r\n"
    whole = ImapSplitter().feed(stream)
    bytewise_splitter = ImapSplitter()
    bytewise = [piece for i in range(len(stream)) for piece in bytewise_splitter.feed(stream[i:i + 1])]
    assert b"".join(p.data for p in bytewise) == stream
    starts = [p.data for p in whole if p.starts_unit]
    assert starts == [b"a1 LOGIN u p\r\n", b"a2 APPEND INBOX {12}\r\n", b"a3 NOOP\r\n"]
    assert [p.data for p in bytewise if p.starts_unit] == starts


def test_counts_commands_but_not_literal_payloads(dovecot: Dovecot, fresh_user: User) -> None:
    with FaultProxy(dovecot.host, dovecot.port) as proxy, session(proxy, fresh_user) as imap:
        imap.append("INBOX", MESSAGE)
        imap.select_folder("INBOX")
        imap.fetch([1], ["BODY.PEEK[]"])
    names = proxy.command_names()
    assert "LOGIN" in names and "APPEND" in names and "UID FETCH" in names
    assert names.count("LOGOUT") == 1  # the body's "a1 LOGOUT" line was not taken for a command
    assert "UID EXPUNGE" not in names
    assert [c.number for c in proxy.commands] == list(range(1, len(names) + 1))


def numbered(proxy: FaultProxy, name: str) -> int:
    return next(c.number for c in proxy.commands if c.name == name)


def learn_store_number(dovecot: Dovecot, user: User) -> int:
    """The number of the STORE in the scripted session below, from a proxy that doesn't cut."""
    with FaultProxy(dovecot.host, dovecot.port) as proxy:
        scripted_session(proxy, user, expect_cut=False)
        return numbered(proxy, "UID STORE")


def scripted_session(proxy: FaultProxy, user: User, *, expect_cut: bool) -> None:
    with session(proxy, user) as imap:
        imap.select_folder("INBOX")
        if expect_cut:
            with pytest.raises(CONNECTION_ERRORS):
                imap.add_flags([1], ["\\Seen"])
        else:
            imap.add_flags([1], ["\\Seen"])
            imap.remove_flags([1], ["\\Seen"])


@pytest.mark.parametrize("variant, server_did_it", [("before", False), ("after", True), ("mid_response", True)])
def test_cut_at_a_command(dovecot: Dovecot, fresh_user: User, variant: str, server_did_it: bool) -> None:
    dovecot.append(fresh_user, MESSAGE)
    store_at = learn_store_number(dovecot, fresh_user)
    assert not seen_on_server(dovecot, fresh_user)
    with FaultProxy(dovecot.host, dovecot.port, cut=Cut(store_at, variant)) as proxy:  # type: ignore[arg-type]
        scripted_session(proxy, fresh_user, expect_cut=True)
        assert proxy.cut_fired.is_set()
    time.sleep(0.2)  # the server finishes the command it received even though its client is gone
    assert seen_on_server(dovecot, fresh_user) is server_did_it


def raw_session(proxy: FaultProxy, user: User) -> bytes:
    """Log in, select and fetch message 1 over a bare socket; return the FETCH answer as received."""
    with socket.create_connection((proxy.host, proxy.port), timeout=10) as sock:
        read_until(sock, b"\r\n")
        for tag, line in ((b"a1", f"LOGIN {user.username} {user.password}".encode()), (b"a2", b"SELECT INBOX")):
            sock.sendall(tag + b" " + line + b"\r\n")
            read_until(sock, b"\r\n" + tag + b" ")
        sock.sendall(b"a3 UID FETCH 1 BODY.PEEK[]\r\n")
        return read_until(sock, b"\r\na3 OK")


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    """What arrives until ``marker`` has been seen (and its line ended), or until the connection closes."""
    data = b"\r\n"
    while marker not in data or not data.endswith(b"\r\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data[2:]


def test_mid_response_delivers_part_of_a_long_answer(dovecot: Dovecot, fresh_user: User) -> None:
    dovecot.append(fresh_user, MESSAGE)
    with FaultProxy(dovecot.host, dovecot.port) as probe:
        whole = raw_session(probe, fresh_user)
    with FaultProxy(dovecot.host, dovecot.port, cut=Cut(3, "mid_response")) as proxy:
        partial = raw_session(proxy, fresh_user)
    assert whole.startswith(b"* 1 FETCH") and b"a3 OK" in whole
    assert whole.startswith(partial) and 0 < len(partial) < len(whole)
    assert b"a3 OK" not in partial


def test_reconnecting_client_is_served_after_the_cut(dovecot: Dovecot, fresh_user: User) -> None:
    dovecot.append(fresh_user, MESSAGE)
    with FaultProxy(dovecot.host, dovecot.port, cut=Cut(3, "before")) as proxy:
        with pytest.raises(CONNECTION_ERRORS), session(proxy, fresh_user) as imap:
            imap.select_folder("INBOX")
            imap.noop()
        with session(proxy, fresh_user) as imap:
            assert imap.select_folder("INBOX")[b"EXISTS"] == 1


def test_a_server_that_stays_down_refuses_every_later_connection(dovecot: Dovecot, fresh_user: User) -> None:
    with FaultProxy(dovecot.host, dovecot.port, cut=Cut(3, "after", stay_down=True)) as proxy:
        with pytest.raises(CONNECTION_ERRORS), session(proxy, fresh_user) as imap:
            imap.select_folder("INBOX")
            imap.noop()
        with pytest.raises(CONNECTION_ERRORS):
            IMAPClient(proxy.host, port=proxy.port, ssl=False, timeout=5)
    assert len(proxy.commands) == 3  # nothing after the cut reached the server


def test_before_command_hook_holds_a_command_until_released(dovecot: Dovecot, fresh_user: User) -> None:
    dovecot.append(fresh_user, MESSAGE)
    reached, release = threading.Event(), threading.Event()

    def hold_store(command: Command) -> None:
        if command.name == "UID STORE":
            reached.set()
            release.wait(10)

    with FaultProxy(dovecot.host, dovecot.port, before_command=hold_store) as proxy:
        worker = threading.Thread(target=scripted_session, args=(proxy, fresh_user), kwargs={"expect_cut": False})
        worker.start()
        assert reached.wait(10)
        assert not seen_on_server(dovecot, fresh_user)  # held: the server has not seen the STORE yet
        release.set()
        worker.join(10)
    assert not worker.is_alive()


def test_response_delay_slows_every_answer(dovecot: Dovecot, fresh_user: User) -> None:
    with FaultProxy(dovecot.host, dovecot.port, response_delay=0.1) as proxy:
        started = time.monotonic()
        with session(proxy, fresh_user) as imap:
            for _ in range(5):
                imap.noop()
        elapsed = time.monotonic() - started
    assert elapsed >= 0.1 * 5


def test_records_what_the_client_sent(dovecot: Dovecot, fresh_user: User) -> None:
    with FaultProxy(dovecot.host, dovecot.port) as proxy, session(proxy, fresh_user):
        pass
    assert f"LOGIN {fresh_user.username} ".encode() in proxy.client_bytes()


def test_upstream_down_closes_the_client(dovecot: Dovecot) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead_port = unused.getsockname()[1]
    with FaultProxy("127.0.0.1", dead_port) as proxy:
        with pytest.raises(CONNECTION_ERRORS):
            IMAPClient(proxy.host, port=proxy.port, ssl=False, timeout=5)
