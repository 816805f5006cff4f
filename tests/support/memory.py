"""An in-memory mailbox that keeps the Mailbox protocol as an IMAP server would.

``MemoryStore`` is the server: folders with a UIDVALIDITY, UIDs that only grow, flags,
and messages that outlive any one session.  ``MemoryMailbox`` is one session on it, as
the planner and executor see a backend.  ``Faults`` makes a named operation fail once,
either before the store changes (the command never arrived) or after (it was carried out
but the answer was lost), so unit tests can cut a run at every step and run it again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

from mailrules.backends.base import CopyResult, FetchNeeds, Features, FolderStatus, StoreDefaults
from mailrules.errors import BackendError, ConnectionLost, MissingFolder
from mailrules.message import MessageView
from mailrules.query import SearchQuery

MUTATIONS = ("create_folder", "add_flags", "remove_flags", "copy", "move", "delete", "append")
ARRIVAL = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)


class Crash(BaseException):
    """The process died here: nothing after it runs, not even the executor's error handling."""


@dataclass
class StoredMessage:
    raw: bytes
    flags: set[str]
    internaldate: datetime


@dataclass
class MemoryFolder:
    uidvalidity: int
    uidnext: int = 1
    messages: dict[int, StoredMessage] = field(default_factory=dict)

    def add(self, message: StoredMessage) -> int:
        uid, self.uidnext = self.uidnext, self.uidnext + 1
        self.messages[uid] = message
        return uid


@dataclass
class MemoryStore:
    """The server's side: what stays when a session ends."""

    folders: dict[str, MemoryFolder] = field(default_factory=dict)
    _next_validity: int = 1000

    def folder(self, name: str) -> MemoryFolder:
        if name not in self.folders:
            self._next_validity += 1
            self.folders[name] = MemoryFolder(self._next_validity)
        return self.folders[name]

    def deliver(self, folder: str, raw: bytes, flags: Sequence[str] = (), when: datetime = ARRIVAL) -> int:
        return self.folder(folder).add(StoredMessage(raw, set(flags), when))

    def contents(self) -> dict[str, list[tuple[bytes, frozenset[str]]]]:
        """Every folder's messages (raw, flags) in UID order: what "nothing lost or duplicated" compares."""
        return {name: [(m.raw, frozenset(m.flags)) for _, m in sorted(box.messages.items())]
                for name, box in sorted(self.folders.items())}


@dataclass
class Faults:
    """Fail the ``nth`` call of ``operation`` once: ``before`` it changes anything or ``after``."""

    operation: str
    nth: int = 1
    when: Literal["before", "after"] = "before"
    error: type[BaseException] = ConnectionLost
    seen: int = 0
    fired: bool = False

    def check(self, operation: str, moment: str) -> None:
        if self.fired or operation != self.operation:
            return
        if moment == "before":
            self.seen += 1
        if self.seen == self.nth and moment == self.when:
            self.fired = True
            raise self.error(f"injected fault {moment} {operation}")


FULL = Features(supports_move=True, expunges_by_uid=True, reports_copy_uids=True, exact_search=False,
                special_use=False, keywords=True)


class MemoryMailbox(StoreDefaults):
    """One session on a MemoryStore; search() pre-filters (every message), the matcher decides."""

    delimiter = "/"

    def __init__(self, store: MemoryStore, *, features: Features = FULL, faults: Faults | None = None):
        super().__init__()
        self.store, self.features, self.faults = store, features, faults
        self.label = "memory:test"
        self.calls: list[str] = []
        self._open: str | None = None
        self._readonly = True

    # ------------------------------------------------------------ folders

    def list_folders(self) -> list[str]:
        return sorted(self.store.folders, key=lambda name: (name != "INBOX", name))

    def create_folder(self, folder: str) -> None:
        with self._changing("create_folder"):
            self.store.folder(folder)

    def open_folder(self, folder: str, *, readonly: bool) -> FolderStatus:
        self._open, self._readonly = None, True
        status = self.status(folder)
        self._open, self._readonly = folder, readonly
        return status

    def status(self, folder: str) -> FolderStatus:
        if folder not in self.store.folders:
            raise BackendError("no such folder", folder=folder)
        box = self.store.folders[folder]
        return FolderStatus(folder, box.uidvalidity, box.uidnext, len(box.messages))

    def reconnect(self) -> None:
        self._open = None

    def close(self) -> None:
        self._open = None

    # ------------------------------------------------------------ reading

    def search(self, query: SearchQuery, *, min_uid: int = 1) -> list[int]:
        return [uid for uid in sorted(self._folder().messages) if uid >= min_uid]

    def fetch(self, uids: Sequence[int], needs: FetchNeeds) -> Iterator[tuple[int, MessageView]]:
        messages = self._folder().messages
        for uid in sorted(set(uids)):
            if uid in messages:  # expunged meanwhile: skipped, as a server does
                stored = messages[uid]
                yield uid, MessageView.from_bytes(stored.raw, flags=stored.flags, internaldate=stored.internaldate)

    def fetch_raw(self, uid: int) -> bytes | None:
        stored = self._folder().messages.get(uid)
        return None if stored is None else stored.raw

    # ------------------------------------------------------------ changing

    def add_flags(self, uids: Sequence[int], flags: Sequence[str]) -> None:
        with self._changing("add_flags"):
            for stored in self._present(uids):
                stored.flags.update(flags)

    def remove_flags(self, uids: Sequence[int], flags: Sequence[str]) -> None:
        with self._changing("remove_flags"):
            for stored in self._present(uids):
                stored.flags.difference_update(flags)

    def copy(self, uids: Sequence[int], folder: str) -> CopyResult:
        with self._changing("copy"):
            return self._copy(uids, folder)

    def move(self, uids: Sequence[int], folder: str) -> CopyResult:
        with self._changing("move"):
            result = self._copy(uids, folder)
            for uid in result.uid_map:
                del self._folder().messages[uid]
            return result

    def delete(self, uids: Sequence[int]) -> None:
        with self._changing("delete"):
            messages = self._folder().messages
            for uid in uids:
                messages.pop(uid, None)

    def append(self, folder: str, message: bytes, flags: Sequence[str]) -> None:
        with self._changing("append"):
            self._destination(folder).add(StoredMessage(message, set(flags), datetime.now(timezone.utc)))

    # ------------------------------------------------------------ inside

    def _copy(self, uids: Sequence[int], folder: str) -> CopyResult:
        destination = self._destination(folder)
        source = self._folder().messages
        uid_map = {uid: destination.add(StoredMessage(source[uid].raw, set(source[uid].flags),
                                                      source[uid].internaldate))
                   for uid in sorted(set(uids)) if uid in source}
        reported = self.features.reports_copy_uids
        return CopyResult(destination.uidvalidity if reported else None, uid_map if reported else {})

    def _destination(self, folder: str) -> MemoryFolder:
        if folder not in self.store.folders:
            raise MissingFolder("no such folder", folder=folder)
        return self.store.folders[folder]

    def _folder(self) -> MemoryFolder:
        if self._open is None:
            raise BackendError("no folder is open")
        return self.store.folders[self._open]

    def _present(self, uids: Sequence[int]) -> list[StoredMessage]:
        messages = self._folder().messages
        return [messages[uid] for uid in uids if uid in messages]

    def _changing(self, operation: str) -> _Change:
        if operation != "create_folder" and operation != "append" and self._readonly:
            raise BackendError(f"{operation} in a folder opened read-only", folder=self._open)
        self.calls.append(operation)
        return _Change(self, operation)


class _Change:
    """Around one mutating call: the fault points before and after the store changes."""

    def __init__(self, mailbox: MemoryMailbox, operation: str):
        self.mailbox, self.operation = mailbox, operation

    def __enter__(self) -> None:
        if self.mailbox.faults is not None:
            self.mailbox.faults.check(self.operation, "before")

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None and self.mailbox.faults is not None:
            self.mailbox.faults.check(self.operation, "after")
