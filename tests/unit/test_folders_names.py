"""Rule folder names <-> server folder names, for the layouts servers really use."""

from __future__ import annotations

import pytest

from mailrules.folders import FolderNames

PLAIN = FolderNames()  # Dovecot's usual layout, Cyrus with altnamespace and unixhierarchysep
CYRUS = FolderNames(delimiter=".", prefix="INBOX.", elsewhere=("user.", ""))
FLAT = FolderNames(delimiter="")
ALT = FolderNames(delimiter="/", elsewhere=("Other Users/", "Shared Folders/"))


@pytest.mark.parametrize(("names", "rule", "server"), [
    (PLAIN, "Lists/python", "Lists/python"),
    (PLAIN, "INBOX/Sub", "INBOX/Sub"),
    (PLAIN, "inbox", "INBOX"),
    (CYRUS, "Lists/python", "INBOX.Lists.python"),
    (CYRUS, "INBOX", "INBOX"),
    (CYRUS, "Inbox/Sub", "INBOX.Sub"),
    (CYRUS, "Privat/Grüße", "INBOX.Privat.Grüße"),
    (FLAT, "Archive", "Archive"),
])
def test_to_server(names: FolderNames, rule: str, server: str) -> None:
    assert names.to_server(rule) == server


@pytest.mark.parametrize(("names", "server", "rule"), [
    (PLAIN, "Lists/python", "Lists/python"),
    (PLAIN, "inbox/Sub", "INBOX/Sub"),
    (CYRUS, "INBOX", "INBOX"),
    (CYRUS, "INBOX.Archive", "Archive"),
    (CYRUS, "inbox.Archive", "Archive"),
    (CYRUS, "INBOX.Lists.python", "Lists/python"),
    (CYRUS, "user.bob.Sent", None),  # another user's
    (CYRUS, "shared.news", None),  # the shared namespace
    (CYRUS, "INBOX.a/b", None),  # '/' inside a level has no rule spelling
    (CYRUS, "INBOX.INBOX", None),
    (ALT, "Other Users/bob/Sent", None),
    (ALT, "Shared Folders/news", None),
    (ALT, "Archive/2025", "Archive/2025"),
])
def test_from_server(names: FolderNames, server: str, rule: str | None) -> None:
    assert names.from_server(server) == rule


@pytest.mark.parametrize("rule", ["INBOX", "Archive", "Lists/python/dev", "Notifications/GitHub"])
@pytest.mark.parametrize("names", [PLAIN, CYRUS, ALT])
def test_names_round_trip(names: FolderNames, rule: str) -> None:
    assert names.from_server(names.to_server(rule)) == rule


def test_inbox_children_are_the_personal_folders_on_a_prefixed_server() -> None:
    assert CYRUS.canonical("INBOX/Archive") == CYRUS.canonical("Archive") == "Archive"
    assert PLAIN.canonical("INBOX/Archive") == "INBOX/Archive"
    assert CYRUS.canonical("INBOX/*") == "INBOX/*"  # globs are matched, not respelled


def test_a_dot_inside_a_level_cannot_exist_where_dot_separates_levels() -> None:
    problem = CYRUS.problem("Ops/v1.2")
    assert problem is not None and "'.'" in problem and "'Ops/v1.2'" in problem
    assert CYRUS.problem("Lists/*") is None and CYRUS.problem("Ops/v1") is None
    assert PLAIN.problem("Ops/v1.2") is None


def test_a_flat_server_has_no_levels() -> None:
    assert FLAT.problem("Archive") is None
    assert "flat" in (FLAT.problem("Lists/python") or "")


class _RefusingImap:
    """imaplib's side of a server that advertises SPECIAL-USE but answers BAD to LIST ... RETURN."""

    def __init__(self) -> None:
        self.untagged_responses: dict[str, list[bytes]] = {}

    def _simple_command(self, *args: str) -> tuple[str, list[bytes]]:
        import imaplib

        raise imaplib.IMAP4.error("LIST command error: BAD [b'Unknown argument']")


class _Client:
    def __init__(self) -> None:
        self._imap = _RefusingImap()
        self.plain_lists = 0

    def list_folders(self) -> list[tuple[tuple[bytes, ...], bytes, str]]:
        self.plain_lists += 1
        return [((b"\\HasNoChildren", b"\\Trash"), b"/", "Bin")]


def test_a_refused_list_return_falls_back_to_a_plain_list() -> None:
    from mailrules.backends.imap import _list_all

    client = _Client()
    assert _list_all(client, special_use=True) == [((b"\\HasNoChildren", b"\\Trash"), b"/", "Bin")]  # type: ignore[arg-type]
    assert client.plain_lists == 1
