"""A Maildir that mailrules changed, served by a real Dovecot: the same keywords and folders.

The test Dovecot keeps each user's mail as Maildir++ (``mail_location = maildir:``), so the
Maildir backend works on that user's directory directly, and an IMAP session then shows
what Dovecot makes of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailrules.backends.base import FetchNeeds
from mailrules.backends.maildir import MaildirMailbox
from tests.support.dovecot import MAIL_GID, MAIL_UID, Dovecot, User, require_dovecot

MESSAGE = b"From: a@example.org\r\nSubject: tagged\r\nMessage-ID: <k1@example.org>\r\n\r\nbody\r\n"


def _give_to_mail_user(root: Path) -> None:
    """What mailrules wrote as root must be Dovecot's mail user's, as its own files are."""
    for directory, _, files in os.walk(root):
        os.chown(directory, MAIL_UID, MAIL_GID)
        for name in files:
            os.chown(os.path.join(directory, name), MAIL_UID, MAIL_GID)


def _imap_flags(dovecot: Dovecot, user: User, folder: str) -> list[set[str]]:
    with dovecot.client(user) as imap:
        imap.select_folder(folder, readonly=True)
        found = imap.get_flags(imap.search(["ALL"]))
    return [{flag.decode() for flag in flags} - {"\\Recent"} for _, flags in sorted(found.items())]


def test_keywords_mailrules_stores_in_a_maildir_are_the_ones_dovecot_shows(dovecot: Dovecot, imap_user: User) -> None:
    dovecot.deliver(imap_user, MESSAGE, flags="S")
    box = MaildirMailbox(imap_user.maildir)
    box.create_folder("Finance/Invoices")
    box.open_folder("INBOX", readonly=False)
    box.add_flags([1], ["$Invoice", "\\Flagged", "$Paid"])
    box.copy([1], "Finance/Invoices")
    box.remove_flags([1], ["$Paid"])
    _give_to_mail_user(imap_user.maildir)
    assert _imap_flags(dovecot, imap_user, "INBOX") == [{"\\Seen", "\\Flagged", "$Invoice"}]
    assert _imap_flags(dovecot, imap_user, "Finance/Invoices") == [{"\\Seen", "\\Flagged", "$Invoice", "$Paid"}]


def test_keywords_dovecot_stored_are_the_ones_mailrules_reads(dovecot: Dovecot, imap_user: User) -> None:
    dovecot.append(imap_user, MESSAGE, flags=("$Family", "\\Seen"))
    with dovecot.client(imap_user) as imap:
        imap.select_folder("INBOX")
        imap.add_flags(imap.search(["ALL"]), ["$Later", "Junk"])
    box = MaildirMailbox(imap_user.maildir)
    box.open_folder("INBOX", readonly=True)
    [(_, message)] = list(box.fetch([1], FetchNeeds()))
    assert message.flags == {"\\Seen", "$Family", "$Later", "Junk"}


class ListescapeDovecot(Dovecot):
    """Dovecot with its listescape plugin, the configuration in which a name may contain a dot."""

    def config_text(self) -> str:
        return "mail_plugins = $mail_plugins listescape\n" + super().config_text()


@pytest.fixture
def listescape_dovecot() -> Iterator[Dovecot]:
    require_dovecot()
    with ListescapeDovecot() as server:
        yield server


def _imap_folders(dovecot: Dovecot, user: User) -> dict[str, int]:
    """Every selectable folder Dovecot lists, with its message count."""
    with dovecot.client(user) as imap:
        names = [name for flags, _, name in imap.list_folders() if b"\\Noselect" not in flags]
        return {name: imap.folder_status(name, ["MESSAGES"])[b"MESSAGES"] for name in names}


NAMES = ["Ops/v1.2", "Grüße/Köln", "日本語", "a&b.c", "back\\slash", "INBOX/Sub.1"]


@pytest.mark.dovecot
def test_folders_mailrules_creates_in_a_maildir_are_the_ones_dovecot_lists(listescape_dovecot: Dovecot) -> None:
    user = listescape_dovecot.add_user()
    box = MaildirMailbox(user.maildir)
    for name in NAMES:
        box.create_folder(name)
        box.append(name, MESSAGE, ["\\Seen"])
    _give_to_mail_user(user.maildir)
    assert _imap_folders(listescape_dovecot, user) == {"INBOX": 0, **{name: 1 for name in NAMES}}


@pytest.mark.dovecot
def test_folders_dovecot_creates_are_the_ones_mailrules_lists(listescape_dovecot: Dovecot) -> None:
    user = listescape_dovecot.add_user()
    for name in NAMES:
        listescape_dovecot.append(user, MESSAGE, folder=name)
    box = MaildirMailbox(user.maildir)
    assert sorted(box.list_folders()) == sorted(["INBOX", *NAMES])
    for name in NAMES:
        assert box.open_folder(name, readonly=True).exists == 1


def test_non_ascii_folders_show_the_same_on_a_plain_dovecot(dovecot: Dovecot, imap_user: User) -> None:
    box = MaildirMailbox(imap_user.maildir)
    for name in ("Grüße/Köln", "日本語"):
        box.create_folder(name)
        box.append(name, MESSAGE, [])
    _give_to_mail_user(imap_user.maildir)
    assert _imap_folders(dovecot, imap_user) == {"INBOX": 0, "Grüße/Köln": 1, "日本語": 1}
