"""ImapMailbox against a real, private Dovecot: what it sends, what it reads, what it leaves alone."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.header import Header
from pathlib import Path

import pytest

from mailrules.backends.base import FetchNeeds
from mailrules.backends.imap import DOVECOT_LINE, ImapMailbox, TlsMode
from mailrules.errors import BackendError, ConnectionLost
from mailrules.message import MessageView
from mailrules.uidset import uid_ranges
from mailrules.query import EVERYTHING, Key, NotKey, OrKey, SearchQuery, Term
from tests.support.dovecot import Dovecot, User, free_port, maildir_folder

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SUBJECT = FetchNeeds(headers=frozenset({"subject"}))
_ids = itertools.count(1)


def keys(*wanted: Key) -> SearchQuery:
    return SearchQuery(wanted, True, None)


def message(subject: str = "Hello", sender: str = "alice@example.org", body: str = "Hi there\r\n",
            headers: str = "") -> bytes:
    encoded = Header(subject, "utf-8").encode() if not subject.isascii() else subject
    return (f"From: {sender}\r\nTo: bob@example.org\r\nSubject: {encoded}\r\n"
            f"Message-ID: <{next(_ids)}@example.org>\r\n{headers}\r\n{body}").encode()


def connect(user: User, *, tls: TlsMode = "none", port: int | None = None, **options: object) -> ImapMailbox:
    return ImapMailbox(user.host, port or user.port, tls=tls, username=user.username, password=user.password,
                       timeout=30, **options).connect()  # type: ignore[arg-type]


@pytest.fixture
def mailbox(imap_user: User) -> Iterator[ImapMailbox]:
    box = connect(imap_user)
    try:
        yield box
    finally:
        box.close()


def server_flags(dovecot: Dovecot, user: User, folder: str = "INBOX") -> dict[int, set[str]]:
    """Every message's flags as a second client sees them (``\\Recent`` left out)."""
    with dovecot.client(user) as imap:
        imap.select_folder(folder, readonly=True)
        uids = imap.search(["ALL"])
        found = imap.fetch(uids, ["FLAGS"]) if uids else {}
    return {uid: {flag.decode() for flag in data[b"FLAGS"]} - {"\\Recent"} for uid, data in found.items()}


def subjects(box: ImapMailbox, uids: list[int]) -> dict[int, str]:
    return {uid: view.subject for uid, view in box.fetch(uids, SUBJECT)}


# ---------------------------------------------------------------- logging in


def test_login_reads_capabilities_and_never_shows_the_password(imap_user: User) -> None:
    trace: list[str] = []
    box = connect(imap_user, trace=trace.append)
    box.close()
    assert {"IMAP4REV1", "MOVE", "UIDPLUS"} <= box.capabilities
    assert f"LOGIN {imap_user.username} ****" in trace
    assert all(imap_user.password not in line for line in trace)
    assert imap_user.password not in repr(box) + box.label


def test_a_wrong_password_is_a_clear_error(imap_user: User) -> None:
    box = ImapMailbox(imap_user.host, imap_user.port, tls="none", username=imap_user.username, password="wrong")
    with pytest.raises(BackendError, match=f"login failed for user {imap_user.username} at 127.0.0.1") as caught:
        box.connect()
    assert "wrong" not in str(caught.value)


def test_nobody_listening_is_a_clear_error() -> None:
    port = free_port()
    box = ImapMailbox("127.0.0.1", port, tls="none", username="x", password="y", timeout=5)
    with pytest.raises(BackendError, match=f"cannot connect to 127.0.0.1:{port}: Connection refused"):
        box.connect()


# ---------------------------------------------------------------- folders


def test_folder_names_round_trip_through_modified_utf7(dovecot: Dovecot, imap_user: User,
                                                       mailbox: ImapMailbox) -> None:
    dovecot.deliver(imap_user, message("im Ordner"), folder="Grüße")
    mailbox.create_folder("Entwürfe/日本語")
    assert maildir_folder(imap_user.maildir, "Entwürfe/日本語").is_dir()  # stored under its mUTF-7 name
    assert {"Grüße", "Entwürfe", "Entwürfe/日本語"} <= set(mailbox.list_folders())
    assert mailbox.open_folder("Grüße", readonly=True).exists == 1


def test_listing_puts_inbox_first_and_leaves_out_unselectable_parents(dovecot: Dovecot, imap_user: User,
                                                                      mailbox: ImapMailbox) -> None:
    dovecot.deliver(imap_user, message(), folder="Lists/lkml")
    dovecot.deliver(imap_user, message(), folder="Archive")
    assert mailbox.list_folders() == ["INBOX", "Archive", "Lists/lkml"]  # "Lists" is \Noselect
    assert mailbox.delimiter == "/"


def test_create_makes_parents_subscribes_and_is_idempotent(dovecot: Dovecot, imap_user: User,
                                                           mailbox: ImapMailbox) -> None:
    mailbox.create_folder("Archive/2025/Q1")
    mailbox.create_folder("Archive/2025/Q1")
    assert {"Archive", "Archive/2025", "Archive/2025/Q1"} <= set(mailbox.list_folders())
    with dovecot.client(imap_user) as imap:
        subscribed = {name for _, _, name in imap.list_sub_folders()}
    assert {"Archive", "Archive/2025", "Archive/2025/Q1"} <= subscribed


def test_opening_a_missing_folder_names_it(mailbox: ImapMailbox) -> None:
    with pytest.raises(BackendError, match="Mailbox doesn't exist: Nowhere") as caught:
        mailbox.open_folder("Nowhere", readonly=True)
    assert (caught.value.folder, caught.value.command) == ("Nowhere", "EXAMINE")


def test_status_reads_a_folder_without_selecting_it(dovecot: Dovecot, imap_user: User, mailbox: ImapMailbox) -> None:
    for _ in range(3):
        dovecot.deliver(imap_user, message(), folder="Archive")
    status = mailbox.status("Archive")
    assert (status.name, status.exists, status.uidnext) == ("Archive", 3, 4)
    assert status.uidvalidity == mailbox.open_folder("Archive", readonly=True).uidvalidity


# ---------------------------------------------------------------- planning changes nothing


def test_examine_and_peek_leave_every_flag_alone(dovecot: Dovecot, imap_user: User, mailbox: ImapMailbox) -> None:
    dovecot.deliver(imap_user, message(body="secret body\r\n"))
    status = mailbox.open_folder("INBOX", readonly=True)
    [(uid, view)] = list(mailbox.fetch([1], FetchNeeds(body=True, structure=True)))
    assert "secret body" in view.body_text()
    assert mailbox.fetch_raw(uid) is not None
    assert (status.exists, status.uidnext) == (1, 2)
    for change in (lambda: mailbox.add_flags([uid], ["\\Flagged"]), lambda: mailbox.delete([uid]),
                   lambda: mailbox.move([uid], "Trash")):
        with pytest.raises(BackendError, match="open read-only"):  # Dovecot itself would say OK
            change()
    assert server_flags(dovecot, imap_user) == {1: set()}


# ---------------------------------------------------------------- searching


def test_search_sends_non_ascii_text_as_utf8(dovecot: Dovecot, imap_user: User) -> None:
    dovecot.deliver(imap_user, message("Grüße aus Köln"))
    dovecot.deliver(imap_user, message("Hello (urgent)"))
    trace: list[str] = []
    box = connect(imap_user, trace=trace.append)
    box.open_folder("INBOX", readonly=True)
    assert box.search(keys(Term(("SUBJECT", "grüße")))) == [1]
    assert box.search(keys(OrKey(Term(("SUBJECT", "köln")), Term(("FROM", "nobody@nowhere.example"))))) == [1]
    assert box.search(keys(NotKey(Term(("SUBJECT", "Grüße"))))) == [2]
    assert box.search(keys(Term(("SUBJECT", "(urgent)")))) == [2]  # imapclient itself would send it unquoted: BAD
    box.close()
    assert any(line.startswith("UID SEARCH CHARSET UTF-8 ") for line in trace)
    assert not any("CHARSET" in line for line in trace if "urgent" in line)


def test_search_from_a_uid_ignores_the_star_quirk(dovecot: Dovecot, imap_user: User,
                                                  mailbox: ImapMailbox) -> None:
    for index in range(3):
        dovecot.deliver(imap_user, message(f"n{index}"))
    mailbox.open_folder("INBOX", readonly=True)
    assert mailbox.search(EVERYTHING, min_uid=2) == [2, 3]
    assert mailbox.search(EVERYTHING, min_uid=10) == []  # the server answers "10:*" with UID 3


# ---------------------------------------------------------------- fetching


def test_fetch_reads_every_requested_uid_in_batches(dovecot: Dovecot, imap_user: User,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import mailrules.backends.imap as imap

    monkeypatch.setattr(imap, "HEADER_BATCH", 2000)
    for index in range(2100):
        dovecot.deliver(imap_user, message(f"number {index}"))
    box = connect(imap_user)
    box.open_folder("INBOX", readonly=True)
    uids = box.search(EVERYTHING)
    everything = subjects(box, uids)
    every_third = subjects(box, uids[::3])
    box.close()
    assert sorted(everything.values()) == sorted(f"number {index}" for index in range(2100))
    assert list(every_third) == uids[::3]
    assert dovecot.rawlog_commands(imap_user).count("UID FETCH") == 2 + 1  # 2,000 + 100, then 700


def test_fetch_skips_uids_that_are_gone(dovecot: Dovecot, imap_user: User, mailbox: ImapMailbox) -> None:
    dovecot.deliver(imap_user, message("only one"))
    mailbox.open_folder("INBOX", readonly=True)
    assert subjects(mailbox, [1, 7, 99]) == {1: "only one"}
    assert mailbox.fetch_raw(99) is None


def test_fetched_views_carry_date_flags_size_and_structure(dovecot: Dovecot, imap_user: User,
                                                           mailbox: ImapMailbox) -> None:
    arrived = datetime(2025, 1, 31, 23, 30, tzinfo=timezone(timedelta(hours=2)))
    raw = message("Report", body="see attachment\r\n")
    dovecot.deliver(imap_user, raw, flags="SF", internaldate=arrived)
    mailbox.open_folder("INBOX", readonly=True)
    [(uid, view)] = list(mailbox.fetch([1], FetchNeeds(headers=frozenset({"from", "subject"}), structure=True)))
    assert (uid, view.subject, view.addresses("From")[0].address) == (1, "Report", "alice@example.org")
    assert view.internaldate == arrived and view.internaldate.tzinfo is not None
    assert view.flags == frozenset({"\\Seen", "\\Flagged"})
    assert view.size == len(raw)
    assert view.has_attachment() is False
    assert mailbox.fetch_raw(1) == raw


ATTACHMENT_CASES = {
    "rfc2231-filename": ("application/octet-stream", "inline; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf", True),
    "text-attachment": ("text/plain", "attachment", True),
    "text-with-name": ('text/plain; name="notes.txt"', "inline", False),
    "image-no-name": ("image/png", "inline", False),
}


def crafted(content_type: str, disposition: str) -> bytes:
    return (
        "From: a@example.org\r\nSubject: crafted\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        f"--b\r\nContent-Type: {content_type}\r\nContent-Disposition: {disposition}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n"
    ).encode()


def attached_message_with_a_pdf() -> bytes:
    inner = crafted('application/pdf; name="inner.pdf"', "attachment").decode()
    return ("From: a@example.org\r\nSubject: forwarded\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
            "--outer\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
            f"--outer\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n--outer--\r\n").encode()


def attachment_samples() -> list[tuple[str, bytes]]:
    samples = [(path.name, path.read_bytes()) for path in sorted(FIXTURES.glob("*.eml"))]
    samples += [(name, crafted(ctype, disp)) for name, (ctype, disp, _) in ATTACHMENT_CASES.items()]
    return samples + [("attached-message", attached_message_with_a_pdf())]


def test_bodystructure_agrees_with_reading_the_whole_message(dovecot: Dovecot, imap_user: User,
                                                             mailbox: ImapMailbox) -> None:
    samples = attachment_samples()
    uids = {dovecot.append(imap_user, raw): (name, raw) for name, raw in samples}
    mailbox.open_folder("INBOX", readonly=True)
    server = {uids[uid][0]: view.has_attachment() for uid, view in mailbox.fetch(list(uids), FetchNeeds(structure=True))}
    local = {name: MessageView.from_bytes(raw).has_attachment() for name, raw in samples}
    assert server == local
    assert {name: server[name] for name in ATTACHMENT_CASES} == {n: c[2] for n, c in ATTACHMENT_CASES.items()}
    assert server["attached-message"] is False  # a PDF inside an attached message is not ours


# ---------------------------------------------------------------- changing messages


def test_flags_are_added_and_removed_in_bounded_commands(dovecot: Dovecot, imap_user: User) -> None:
    for _ in range(3):
        dovecot.deliver(imap_user, message())
    box = connect(imap_user)
    box.open_folder("INBOX", readonly=False)
    scattered = list(range(1, 40001, 2))  # UIDs that don't exist are ignored by STORE
    box.add_flags(scattered, ["\\Flagged", "$Invoice"])
    box.remove_flags([3], ["$Invoice"])
    box.close()
    assert server_flags(dovecot, imap_user) == {1: {"\\Flagged", "$Invoice"}, 2: set(), 3: {"\\Flagged"}}
    sets = uid_ranges(scattered, max_chars=DOVECOT_LINE)  # Dovecot is given its 64 KiB lines
    assert dovecot.rawlog_commands(imap_user).count("UID STORE") == len(sets) + 1 == 3


def test_copy_reports_where_the_copies_landed(dovecot: Dovecot, imap_user: User, mailbox: ImapMailbox) -> None:
    for name in ("one", "two", "three"):
        dovecot.deliver(imap_user, message(name))
    dovecot.deliver(imap_user, message("already there"), folder="Keep")
    mailbox.open_folder("INBOX", readonly=False)
    result = mailbox.copy([1, 3], "Keep")
    assert result.dest_uidvalidity == mailbox.status("Keep").uidvalidity
    assert sorted(result.uid_map) == [1, 3]
    mailbox.open_folder("Keep", readonly=True)
    assert subjects(mailbox, [result.uid_map[1], result.uid_map[3]]) == {result.uid_map[1]: "one",
                                                                         result.uid_map[3]: "three"}
    assert mailbox.status("INBOX").exists == 3


def test_move_uses_move_when_the_server_has_it(dovecot: Dovecot, imap_user: User) -> None:
    for name in ("one", "two", "three"):
        dovecot.deliver(imap_user, message(name))
    box = connect(imap_user)
    box.create_folder("Archive")
    box.open_folder("INBOX", readonly=False)
    result = box.move([1, 3], "Archive")
    box.close()
    assert sorted(result.uid_map) == [1, 3]
    assert list(server_flags(dovecot, imap_user)) == [2]
    assert len(server_flags(dovecot, imap_user, "Archive")) == 2
    commands = dovecot.rawlog_commands(imap_user)
    assert "UID MOVE" in commands and "UID COPY" not in commands and "EXPUNGE" not in commands


def test_move_without_move_copies_then_expunges_only_those_uids(dovecot_factory: Callable[..., Dovecot]) -> None:
    server = dovecot_factory(without=("MOVE",))
    user = server.add_user()
    for name in ("one", "two", "three"):
        server.deliver(user, message(name))
    box = connect(user)
    assert "MOVE" not in box.capabilities
    box.create_folder("Archive")
    box.open_folder("INBOX", readonly=False)
    result = box.move([1, 3], "Archive")
    box.close()
    assert sorted(result.uid_map) == [1, 3]
    assert list(server_flags(server, user)) == [2]
    commands = server.rawlog_commands(user)
    assert {"UID COPY", "UID STORE", "UID EXPUNGE"} <= set(commands)
    assert "UID MOVE" not in commands and "EXPUNGE" not in commands


def test_without_uidplus_nothing_is_expunged_and_the_user_is_told(dovecot_factory: Callable[..., Dovecot]) -> None:
    server = dovecot_factory(without=("MOVE", "UIDPLUS"))
    user = server.add_user()
    for name in ("one", "two"):
        server.deliver(user, message(name))
    box = connect(user)
    box.create_folder("Archive")
    box.open_folder("INBOX", readonly=False)
    box.move([1], "Archive")
    box.delete([2])
    box.close()
    assert server_flags(server, user) == {1: {"\\Deleted"}, 2: {"\\Deleted"}}
    assert len(server_flags(server, user, "Archive")) == 1
    assert len(box.notices) == 2 and all("lacks UIDPLUS" in notice for notice in box.notices)
    assert not {"EXPUNGE", "UID EXPUNGE", "UID MOVE", "CLOSE"} & set(server.rawlog_commands(user))


def test_delete_expunges_only_our_uids(dovecot: Dovecot, imap_user: User, mailbox: ImapMailbox) -> None:
    for name in ("ours", "someone else's", "untouched"):
        dovecot.deliver(imap_user, message(name))
    with dovecot.client(imap_user) as other:
        other.select_folder("INBOX")
        other.add_flags([2], ["\\Deleted"])
    mailbox.open_folder("INBOX", readonly=False)
    mailbox.delete([1])
    assert server_flags(dovecot, imap_user) == {2: {"\\Deleted"}, 3: set()}


def test_append_stores_the_message_with_its_flags(dovecot: Dovecot, imap_user: User, mailbox: ImapMailbox) -> None:
    raw = message("Auto: away", sender="me@example.org")
    mailbox.create_folder("Sent")
    mailbox.append("Sent", raw, ["\\Seen"])
    assert server_flags(dovecot, imap_user, "Sent") == {1: {"\\Seen"}}
    mailbox.open_folder("Sent", readonly=True)
    assert mailbox.fetch_raw(1) == raw


# ---------------------------------------------------------------- dropped connections


def test_reading_survives_a_dropped_connection(dovecot: Dovecot, imap_user: User) -> None:
    dovecot.deliver(imap_user, message("still here"))
    trace: list[str] = []
    box = connect(imap_user, trace=trace.append)
    box.open_folder("INBOX", readonly=True)
    dovecot.kick(imap_user)
    assert box.search(keys(Term(("SUBJECT", "still")))) == [1]
    assert subjects(box, [1]) == {1: "still here"}
    box.close()
    assert trace.count(f"LOGIN {imap_user.username} ****") == 2
    assert trace.count('EXAMINE "INBOX"') == 2


def test_a_change_is_never_repeated_after_a_dropped_connection(dovecot: Dovecot, imap_user: User) -> None:
    dovecot.deliver(imap_user, message())
    box = connect(imap_user)
    box.open_folder("INBOX", readonly=False)
    dovecot.kick(imap_user)
    with pytest.raises(ConnectionLost, match="connection to 127.0.0.1:.* lost") as caught:
        box.add_flags([1], ["\\Flagged"])
    assert (caught.value.folder, caught.value.command) == ("INBOX", "UID STORE")
    assert server_flags(dovecot, imap_user) == {1: set()}
    box.reconnect()
    box.open_folder("INBOX", readonly=False)
    box.add_flags([1], ["\\Flagged"])
    box.close()
    assert server_flags(dovecot, imap_user) == {1: {"\\Flagged"}}


def test_a_folder_recreated_while_disconnected_is_not_read_by_stale_uids(dovecot: Dovecot, imap_user: User) -> None:
    dovecot.deliver(imap_user, message("old"), folder="Work")
    box = connect(imap_user)
    box.open_folder("Work", readonly=True)
    dovecot.kick(imap_user)
    with dovecot.client(imap_user) as other:
        other.delete_folder("Work")
        other.create_folder("Work")
    with pytest.raises(BackendError, match="UIDVALIDITY changed"):
        box.search(EVERYTHING)
    box.close()


# ---------------------------------------------------------------- TLS


@pytest.fixture
def tls_server(dovecot_factory: Callable[..., Dovecot]) -> Dovecot:
    return dovecot_factory(tls=True)


def test_an_untrusted_certificate_is_refused_with_advice(tls_server: Dovecot) -> None:
    user = tls_server.add_user()
    for tls, port in (("ssl", tls_server.tls_port), ("starttls", tls_server.port)):
        with pytest.raises(BackendError, match="certificate verify failed for host 127.0.0.1: .*set ca_file"):
            connect(user, tls=tls, port=port)  # type: ignore[arg-type]
    assert tls_server.rawlog_commands(user) == []


def test_ca_file_makes_the_certificate_trusted(tls_server: Dovecot) -> None:
    user = tls_server.add_user()
    for tls, port in (("ssl", tls_server.tls_port), ("starttls", tls_server.port)):
        box = connect(user, tls=tls, port=port, ca_file=str(tls_server.cert_path))  # type: ignore[arg-type]
        assert box.open_folder("INBOX", readonly=True).exists == 0
        box.close()


def test_starttls_is_required_when_configured(dovecot: Dovecot, imap_user: User) -> None:
    with pytest.raises(BackendError, match="does not offer STARTTLS, which the account requires"):
        connect(imap_user, tls="starttls")
    assert list(imap_user.rawlog_dir.iterdir()) == []  # never logged in


def test_whole_messages_are_fetched_in_batches_by_size(imap_user: User, dovecot: Dovecot,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import mailrules.backends.imap as imap

    for number in range(5):
        dovecot.deliver(imap_user, message(f"big {number}", body="x" * 3000 + "\r\n"))
    monkeypatch.setattr(imap, "BODY_BATCH_BYTES", 7000)  # two of these messages a batch
    commands: list[str] = []
    with connect(imap_user, trace=commands.append) as box:
        box.open_folder("INBOX", readonly=True)
        uids = box.search(EVERYTHING)
        seen = [(uid, view.body_text().strip()[:3]) for uid, view in box.fetch(uids, FetchNeeds(body=True))]
    assert seen == [(uid, "xxx") for uid in uids]
    bodies = [line for line in commands if "BODY.PEEK[]" in line]
    assert [line.split()[2] for line in bodies] == [f"{uids[0]}:{uids[1]}", f"{uids[2]}:{uids[3]}", str(uids[4])]
