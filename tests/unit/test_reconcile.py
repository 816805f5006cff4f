"""Telling which messages of an interrupted transfer reached the destination (Maildir backend, no server).

Matching is by fingerprint (Message-ID, size, INTERNALDATE) as a multiset: a repeated
Message-ID is told apart by size and date, a missing one by Date/From/Subject, and each
copy in the destination is claimed by one original only.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailrules.backends.maildir import MaildirMailbox
from mailrules.execute import Operation, fingerprints, reconcile


def write(folder: Path, name: str, raw: bytes, mtime: int) -> None:
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    path = folder / "cur" / f"{name}:2,"
    path.write_bytes(raw)
    os.utime(path, (mtime, mtime))


def mail(message_id: str | None, subject: str, body: str = "x") -> bytes:
    mid = f"Message-ID: {message_id}\n" if message_id else ""
    return f"From: a@example.com\nSubject: {subject}\nDate: Thu, 19 Nov 2026 10:00:00 +0000\n{mid}\n{body}\n".encode()


SOURCE = {  # name -> (raw, mtime): three share a Message-ID, two have none
    "1": (mail("<same@x>", "one"), 1000),
    "2": (mail("<same@x>", "one", "longer body"), 1000),
    "3": (mail("<same@x>", "one"), 2000),
    "4": (mail(None, "no id"), 1000),
    "5": (mail(None, "no id either"), 1000),
    "6": (mail("<other@x>", "other"), 1000),
}


@pytest.fixture
def box(tmp_path: Path) -> MaildirMailbox:
    for name, (raw, mtime) in SOURCE.items():
        write(tmp_path, name, raw, mtime)
    (tmp_path / ".Dest").mkdir()
    for name in ("2", "3", "5"):  # what an interrupted COPY had put there
        raw, mtime = SOURCE[name]
        write(tmp_path / ".Dest", f"d{name}", raw, mtime)
    write(tmp_path / ".Dest", "unrelated", mail("<same@x>", "one", "a different message"), 1000)
    return MaildirMailbox(tmp_path)


def operation(box: MaildirMailbox, kind: str, uids: tuple[int, ...]) -> Operation:
    status = box.open_folder("INBOX", readonly=False)
    prints = tuple(fingerprints(box, uids).items())
    return Operation("INBOX", status.uidvalidity, kind, uids, "Dest", dest_uidvalidity=status.uidvalidity,
                     dest_uidnext=1, fingerprints=prints)


def test_repeated_and_missing_message_ids_are_told_apart_by_size_and_date(box: MaildirMailbox) -> None:
    op = operation(box, "copy", (1, 2, 3, 4, 5, 6))
    found = reconcile(box, op)
    assert found.landed == (2, 3, 5)
    assert found.remaining == (1, 4, 6)
    assert found.moved == found.vanished == ()


def test_a_copy_in_the_destination_is_claimed_once(tmp_path: Path) -> None:
    for name in ("a", "b"):  # two identical originals, one copy landed
        write(tmp_path, name, mail("<twin@x>", "twin"), 1000)
    (tmp_path / ".Dest").mkdir()
    write(tmp_path / ".Dest", "copy", mail("<twin@x>", "twin"), 1000)
    box = MaildirMailbox(tmp_path)
    found = reconcile(box, operation(box, "move", (1, 2)))
    assert len(found.landed) == 1 and len(found.remaining) == 1


def test_gone_from_the_source_is_moved_if_its_copy_is_there_else_vanished(box: MaildirMailbox) -> None:
    op = operation(box, "move", (1, 2, 3, 6))
    box.delete((2, 6))  # 2 was moved (its copy is in Dest), 6 expunged by someone else
    found = reconcile(box, op)
    assert found.moved == (2,)
    assert found.vanished == (6,)
    assert found.landed == (3,)
    assert found.remaining == (1,)
