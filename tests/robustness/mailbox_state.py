"""What a mailbox holds, as comparable values: the basis of every "no mail was lost" check."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

from imapclient import IMAPClient

from tests.support.dovecot import Dovecot, User

Identity = tuple[str, str]  # (Message-ID, sha256 of the whole message)
Entry = tuple[str, frozenset[str]]  # (Message-ID, flags without \Recent)


@dataclass(frozen=True, slots=True)
class MailboxState:
    """Every message of every folder: identities and flags, as multisets per folder."""

    folders: dict[str, Counter[tuple[Identity, frozenset[str]]]]

    def entries(self) -> dict[str, Counter[Entry]]:
        """Per folder, the (Message-ID, flags) multiset (empty folders left out)."""
        result: dict[str, Counter[Entry]] = {}
        for folder, messages in self.folders.items():
            entries = Counter({(identity[0], flags): count for (identity, flags), count in messages.items()})
            if entries:
                result[folder] = entries
        return result

    def identities(self) -> Counter[Identity]:
        """How many copies of each message the whole mailbox holds."""
        total: Counter[Identity] = Counter()
        for messages in self.folders.values():
            for (identity, _flags), count in messages.items():
                total[identity] += count
        return total

    def count(self) -> int:
        return sum(self.identities().values())


def read_state(server: Dovecot, user: User) -> MailboxState:
    with server.client(user) as imap:
        return MailboxState({folder: _folder_messages(imap, folder) for folder in _folders(imap)})


def _folders(imap: IMAPClient) -> list[str]:
    return sorted(name for flags, _delim, name in imap.list_folders() if b"\\Noselect" not in flags)


def _folder_messages(imap: IMAPClient, folder: str) -> Counter[tuple[Identity, frozenset[str]]]:
    imap.select_folder(folder, readonly=True)
    messages: Counter[tuple[Identity, frozenset[str]]] = Counter()
    for data in fetch_all(imap, ["FLAGS", "BODY.PEEK[]"]).values():
        raw = data[b"BODY[]"]
        flags = frozenset(flag.decode() for flag in data[b"FLAGS"] if flag != b"\\Recent")
        messages[((_message_id(raw), hashlib.sha256(raw).hexdigest()), flags)] += 1
    return messages


def fetch_all(imap: IMAPClient, items: list[str]) -> dict[int, dict[bytes, object]]:
    """FETCH ``items`` of every message in the selected folder (imapclient 4 won't take ``1:*``)."""
    uids = imap.search(["ALL"])
    return imap.fetch(uids, items) if uids else {}


def _message_id(raw: bytes) -> str:
    header = raw.split(b"\r\n\r\n", 1)[0]
    for line in header.split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode(errors="replace")
    return ""


@dataclass(frozen=True, slots=True)
class Damage:
    """How a mailbox differs from the reference end state; empty when they agree."""

    lost: list[str]  # messages that should exist (somewhere) and exist nowhere
    duplicated: list[str]  # more copies than the reference run made
    strangers: list[str]  # messages that were never there
    misplaced: dict[str, str]  # folder -> difference of (Message-ID, flags)

    def __bool__(self) -> bool:
        return bool(self.lost or self.duplicated or self.strangers or self.misplaced)

    def summary(self) -> str:
        parts = [f"{name}: {value}" for name, value in (("LOST", self.lost), ("duplicated", self.duplicated),
                                                        ("strangers", self.strangers), ("misplaced", self.misplaced))
                 if value]
        return "; ".join(parts)


def compare(actual: MailboxState, reference: MailboxState, originals: Counter[Identity]) -> Damage:
    """``actual`` against the end state of an uninterrupted run from the same ``originals``."""
    have, want = actual.identities(), reference.identities()
    lost = sorted(identity[0] for identity in originals if want[identity] and not have[identity])
    duplicated = sorted(f"{identity[0]} x{have[identity]} (want {want[identity]})"
                        for identity in have if identity in originals and have[identity] > want[identity])
    strangers = sorted(identity[0] for identity in have if identity not in originals)
    misplaced = {}
    actual_entries, reference_entries = actual.entries(), reference.entries()
    for folder in sorted(set(actual_entries) | set(reference_entries)):
        extra = actual_entries.get(folder, Counter()) - reference_entries.get(folder, Counter())
        missing = reference_entries.get(folder, Counter()) - actual_entries.get(folder, Counter())
        if extra or missing:
            misplaced[folder] = f"extra {_show(extra)} missing {_show(missing)}"
    return Damage(lost, duplicated, strangers, misplaced)


def _show(entries: Counter[Entry]) -> str:
    return "[" + ", ".join(f"{mid} {sorted(flags)}" + (f" x{n}" if n > 1 else "") for (mid, flags), n in
                           sorted(entries.items(), key=lambda item: item[0][0])) + "]"
