"""The test servers themselves: other tests trust what they report, so check it here."""

from __future__ import annotations

import smtplib
import socket
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from imapclient.exceptions import IMAPClientError

import tests.support.cyrus as cyrus_support
import tests.support.dovecot as dovecot_support
import tests.support.requirements as requirements
from tests.support.cyrus import DEBIAN_DEFAULT, UPSTREAM_DEFAULT, Cyrus, Layout, require_cyrus
from tests.support.dovecot import Dovecot, User, maildir_folder, require_dovecot
from tests.support.smtp import RecordingSMTP

TRICKY = b"Subject: looks like commands\r\n\r\na1 LOGOUT\r\nb2 UID EXPUNGE 1:*\r\n"


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


# ---------------------------------------------------------------- Dovecot


def test_commands_are_counted_without_literal_payloads(dovecot: Dovecot, imap_user: User) -> None:
    dovecot.append(imap_user, TRICKY)
    assert dovecot.rawlog_commands(imap_user) == ["LIST", "APPEND", "LOGOUT"]
    assert dovecot.count_commands(imap_user) == 3
    dovecot.clear_rawlog(imap_user)
    assert dovecot.count_commands(imap_user) == 0


def test_delivered_mail_keeps_its_date_flags_and_folder(dovecot: Dovecot, imap_user: User) -> None:
    arrived = datetime(2024, 2, 29, 12, 0, tzinfo=timezone.utc)
    path = dovecot.deliver(imap_user, TRICKY, folder="Lists/lkml", flags="SF", internaldate=arrived)
    assert path.parent == imap_user.maildir / ".Lists.lkml" / "cur"
    with dovecot.client(imap_user) as imap:
        imap.normalise_times = False
        imap.select_folder("Lists/lkml", readonly=True)
        [data] = imap.fetch([1], ["FLAGS", "INTERNALDATE", "BODY.PEEK[]"]).values()
    assert set(data[b"FLAGS"]) - {b"\\Recent"} == {b"\\Seen", b"\\Flagged"}
    assert data[b"INTERNALDATE"] == arrived
    assert data[b"BODY[]"] == TRICKY


def test_maildir_folder_names_follow_maildir_plus_plus(tmp_path: Path) -> None:
    assert maildir_folder(tmp_path, "INBOX") == tmp_path
    assert maildir_folder(tmp_path, "Lists/lkml") == tmp_path / ".Lists.lkml"
    assert maildir_folder(tmp_path, "Grüße") == tmp_path / ".Gr&APwA3w-e"
    with pytest.raises(ValueError, match="can't be stored"):
        maildir_folder(tmp_path, "a.b")


def test_bad_maildir_flags_are_refused(dovecot: Dovecot, imap_user: User) -> None:
    with pytest.raises(ValueError, match="Maildir flags are letters"):
        dovecot.deliver(imap_user, TRICKY, flags="\\Seen")


def test_capability_override_is_what_clients_see(dovecot_factory) -> None:  # type: ignore[no-untyped-def]
    server = dovecot_factory(capability="IMAP4rev1 LITERAL+ UIDPLUS")
    assert server.capabilities(server.add_user()) == ["IMAP4REV1", "LITERAL+", "UIDPLUS"]


def test_stop_leaves_nothing_behind(dovecot_factory) -> None:  # type: ignore[no-untyped-def]
    server = dovecot_factory()
    master = server._master_pid()
    assert master is not None and port_open(server.host, server.port)
    server.stop()
    assert not server.root.exists()
    assert not port_open(server.host, server.port)
    assert not dovecot_support._alive(master)


def test_missing_dovecot_skips_locally_but_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dovecot_support, "DOVECOT", "/nonexistent/dovecot")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="dovecot-imapd"):
        require_dovecot()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must install it"):
        require_dovecot()


def test_dovecot_core_without_the_imap_binary_counts_as_missing(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    # What `apt-get install cyrus-imapd` leaves: the master is there, the IMAP binary it starts is not.
    table = tuple(replace(req, pattern=str(tmp_path / "gone" / "imap")) if req.pattern == "/usr/lib/dovecot/imap"
                  else req for req in requirements.REQUIREMENTS)
    monkeypatch.setattr(requirements, "REQUIREMENTS", table)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"gone/imap not found: install Debian's dovecot-imapd"):
        require_dovecot()


def test_sieve_test_reports_what_a_script_would_do(dovecot: Dovecot) -> None:
    script = 'require "fileinto";\nif header :contains "subject" "commands" { fileinto "Finance"; }\n'
    assert "store message in folder: Finance" in dovecot.sieve_test(script, TRICKY)


def test_sieve_test_errors_are_raised(dovecot: Dovecot) -> None:
    with pytest.raises(RuntimeError, match="sieve-test failed"):
        dovecot.sieve_test("this is not sieve", TRICKY)


# ---------------------------------------------------------------- Cyrus


@pytest.mark.parametrize("layout, folder, native", [
    (DEBIAN_DEFAULT, "Lists/lkml", "INBOX.Lists.lkml"),
    (DEBIAN_DEFAULT, "INBOX", "INBOX"),
    (UPSTREAM_DEFAULT, "Lists/lkml", "Lists/lkml"),
    (UPSTREAM_DEFAULT, "inbox", "INBOX"),
])
def test_cyrus_layouts_name_folders_as_the_server_does(layout: Layout, folder: str, native: str) -> None:
    assert layout.native(folder) == native
    assert layout.portable(native) == (folder if folder.upper() != "INBOX" else "INBOX")


def test_cyrus_lists_folders_in_its_layout(cyrus_default: Cyrus, cyrus_alt: Cyrus) -> None:
    for server, delimiter, names in ((cyrus_default, ".", {"INBOX", "INBOX.Lists", "INBOX.Lists.lkml"}),
                                     (cyrus_alt, "/", {"INBOX", "Lists", "Lists/lkml"})):
        user = server.add_user()
        server.append(user, TRICKY, folder="Lists/lkml")
        with server.client(user) as imap:
            listing = imap.list_folders()
            [[(prefix, separator)]] = [imap.namespace().personal]
        assert {name for _, _, name in listing} == names
        assert {sep.decode() for _, sep, _ in listing} == {delimiter}
        assert (prefix, separator) == (server.layout.prefix, delimiter)


def test_cyrus_commands_are_counted_without_literal_payloads(cyrus_alt: Cyrus) -> None:
    user = cyrus_alt.add_user()
    cyrus_alt.append(user, TRICKY)
    assert cyrus_alt.rawlog_commands(user) == ["LIST", "APPEND", "LOGOUT"]
    cyrus_alt.clear_rawlog(user)
    assert cyrus_alt.rawlog_commands(user) == []


def test_cyrus_variants_hide_capabilities_on_the_same_mailboxes(cyrus_alt: Cyrus) -> None:
    user = cyrus_alt.add_user()
    assert {"MOVE", "UIDPLUS"} <= set(cyrus_alt.capabilities(user))
    limited = cyrus_alt.on_variant(user, "no-move-no-uidplus")
    assert not {"MOVE", "UIDPLUS"} & set(cyrus_alt.capabilities(limited))
    cyrus_alt.append(limited, TRICKY)
    with cyrus_alt.client(user) as imap:
        assert imap.select_folder("INBOX")[b"EXISTS"] == 1


def test_cyrus_suppress_capabilities_and_a_wrong_password(cyrus_factory) -> None:  # type: ignore[no-untyped-def]
    server = cyrus_factory(UPSTREAM_DEFAULT, suppress_capabilities=("UIDPLUS",))
    user = server.add_user(password="right")
    assert "UIDPLUS" not in server.capabilities(user) and "MOVE" in server.capabilities(user)
    with pytest.raises(IMAPClientError):
        with server.client(replace(user, password="wrong")):
            pass


def test_cyrus_stop_leaves_nothing_behind(cyrus_factory) -> None:  # type: ignore[no-untyped-def]
    server = cyrus_factory()
    master = server._master_pid()
    assert master is not None and port_open(server.host, server.port)
    server.stop()
    assert not server.root.exists()
    assert not port_open(server.host, server.port)
    assert not dovecot_support._alive(master)


def test_missing_cyrus_skips_locally_but_fails_in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MAILRULES_CYRUS_PREFIX", str(tmp_path / "no-cyrus"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="unpack cyrus-common cyrus-imapd into .*no-cyrus"):
        require_cyrus()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must install it"):
        require_cyrus()
    assert cyrus_support.missing_reason() is not None


# ---------------------------------------------------------------- SMTP


def test_smtp_server_records_envelopes(smtp_server: RecordingSMTP) -> None:
    smtp_server.clear()
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        client.sendmail("me@example.org", ["a@example.org", "b@example.org"], b"Subject: hi\r\n\r\nbody\r\n")
    [received] = smtp_server.messages
    assert (received.mail_from, received.rcpt_tos) == ("me@example.org", ("a@example.org", "b@example.org"))
    assert received.data == b"Subject: hi\r\n\r\nbody\r\n"


def test_smtp_auth_mode_refuses_strangers(smtp_factory) -> None:  # type: ignore[no-untyped-def]
    server = smtp_factory(credentials=("alice", "pw"))
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPSenderRefused):
            client.sendmail("me@example.org", ["a@example.org"], b"Subject: x\r\n\r\nx\r\n")
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("alice", "wrong")
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.login("alice", "pw")
        client.sendmail("me@example.org", ["a@example.org"], b"Subject: x\r\n\r\nx\r\n")
    assert len(server.messages) == 1


def test_a_stopped_smtp_server_is_down_until_started(smtp_factory) -> None:  # type: ignore[no-untyped-def]
    server = smtp_factory()
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(server.host, server.port, timeout=10)
    server.start()
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        assert client.noop()[0] == 250
