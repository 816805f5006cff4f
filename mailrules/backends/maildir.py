"""A local Maildir (Maildir++ layout, as Dovecot and Courier keep it) behind the Mailbox protocol.

Maildir has no UIDs, so messages are numbered in key order when a folder is opened, and
each process gets its own UIDVALIDITY: the numbering is stable from planning to execution
within one ``run``, and ``--new-only`` state from an earlier process never applies (a
local full scan is cheap).  Maildir has no place for IMAP keywords; a plan that would set
one is refused before anything changes.
"""

from __future__ import annotations

import mailbox as stdlib_mailbox
import os
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

from mailrules.backends.base import CopyResult, FetchNeeds, FolderStatus
from mailrules.errors import BackendError, CapabilityError, ConfigurationError, FolderRefused
from mailrules.message import MessageView
from mailrules.model import flag_key

# Maildir info letters for the IMAP system flags (https://cr.yp.to/proto/maildir.html).
FLAG_LETTERS = {"\\draft": "D", "\\flagged": "F", "\\answered": "R", "\\seen": "S", "\\deleted": "T"}
LETTER_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}

DELIMITER = "/"


class MaildirMailbox:
    """Folders of a Maildir++ tree: the root is INBOX, ``.A.B`` is ``A/B``."""

    delimiter = DELIMITER
    # MOVE here is "add to the destination, then remove the original": never a loss.
    capabilities = frozenset({"MOVE"})
    exact_search = False  # search() returns every message; the local evaluator decides
    supports_keywords = False

    def __init__(self, path: str | os.PathLike[str]):
        self.root = Path(path)
        if not self.root.exists():
            raise ConfigurationError(f"the Maildir {self.root} does not exist; check the account's maildir "
                                     "(or --maildir) path")
        if not (self.root / "cur").is_dir():
            raise ConfigurationError(f"{self.root} is not a Maildir (no cur/ folder)")
        self.label = f"maildir:{self.root}"
        self.notices: list[str] = []
        self._uidvalidity = int(time.time())
        self._folder: str | None = None
        self._keys: list[str] = []

    # ------------------------------------------------------------ folders

    def _maildir(self, folder: str) -> stdlib_mailbox.Maildir:
        if folder.upper() == "INBOX":
            return stdlib_mailbox.Maildir(self.root, factory=None, create=False)
        path = self.root / ("." + folder.replace(DELIMITER, "."))
        if not (path / "cur").is_dir():
            raise BackendError("no such folder", folder=folder)
        return stdlib_mailbox.Maildir(path, factory=None, create=False)

    def list_folders(self) -> list[str]:
        names = ["INBOX"]
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") and entry.name not in (".", "..") and (entry / "cur").is_dir():
                names.append(entry.name[1:].replace(".", DELIMITER))
        return names

    def create_folder(self, folder: str) -> None:
        if "." in folder:  # Maildir++ spells the hierarchy with dots: "a.b" would become a/b
            raise FolderRefused("a Maildir++ folder name can't contain '.'; choose another name in the rules",
                                folder=folder, command="create")
        path = self.root / ("." + folder.replace(DELIMITER, "."))
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        (path / "maildirfolder").touch()

    def status(self, folder: str) -> FolderStatus:
        count = sum(1 for key in self._maildir(folder).keys() if not key.startswith("."))
        return FolderStatus(folder, self._uidvalidity, count + 1, count)

    def open_folder(self, folder: str, *, readonly: bool) -> FolderStatus:
        self._folder = folder
        # Names starting with a dot are not messages (Maildir convention; e.g. a .keep file).
        self._keys = sorted(key for key in self._maildir(folder).keys() if not key.startswith("."))
        return FolderStatus(folder, self._uidvalidity, len(self._keys) + 1, len(self._keys))

    def reconnect(self) -> None:
        """Nothing to reconnect to; kept for the protocol."""

    def close(self) -> None:
        self._folder = None

    # ------------------------------------------------------------ reading

    def _current(self) -> stdlib_mailbox.Maildir:
        if self._folder is None:
            raise BackendError("no folder is open")
        return self._maildir(self._folder)

    def _key(self, uid: int) -> str | None:
        return self._keys[uid - 1] if 1 <= uid <= len(self._keys) else None

    def search(self, criteria: list[object], *, min_uid: int = 1) -> list[int]:
        return list(range(max(min_uid, 1), len(self._keys) + 1))

    def fetch(self, uids: Sequence[int], needs: FetchNeeds) -> Iterator[tuple[int, MessageView]]:
        box = self._current()
        for uid in uids:
            key = self._key(uid)
            if key is None:
                continue
            try:
                message = box.get_message(key)
                raw = box.get_bytes(key)
            except (KeyError, FileNotFoundError):
                continue  # removed by another client since the folder was opened
            yield uid, MessageView.from_bytes(raw, flags=_imap_flags(message), internaldate=_arrival(message))

    def fetch_raw(self, uid: int) -> bytes | None:
        key = self._key(uid)
        try:
            return self._current().get_bytes(key) if key else None
        except (KeyError, FileNotFoundError):
            return None

    # ------------------------------------------------------------ changing

    def _rewrite_flags(self, uids: Sequence[int], flags: Sequence[str], add: bool) -> None:
        letters = {_letter(flag) for flag in flags}
        box = self._current()
        for uid in uids:
            key = self._key(uid)
            if key is None or key not in box:
                continue
            message = box.get_message(key)
            current = set(message.get_flags())
            message.set_flags("".join(sorted(current | letters if add else current - letters)))
            message.set_subdir("cur")
            box[key] = message

    def add_flags(self, uids: Sequence[int], flags: Sequence[str]) -> None:
        self._rewrite_flags(uids, flags, add=True)

    def remove_flags(self, uids: Sequence[int], flags: Sequence[str]) -> None:
        self._rewrite_flags(uids, flags, add=False)

    def copy(self, uids: Sequence[int], folder: str) -> CopyResult:
        source, dest = self._current(), self._maildir(folder)
        for uid in uids:
            key = self._key(uid)
            if key is not None and key in source:
                dest.add(source.get_message(key))
        return CopyResult(None, {})

    def move(self, uids: Sequence[int], folder: str) -> CopyResult:
        result = self.copy(uids, folder)  # written and synced before the original goes
        self.delete(uids)
        return result

    def delete(self, uids: Sequence[int]) -> None:
        box = self._current()
        for uid in uids:
            key = self._key(uid)
            if key is not None:
                box.discard(key)

    def append(self, folder: str, message: bytes, flags: Sequence[str]) -> None:
        entry = stdlib_mailbox.MaildirMessage(message)
        entry.set_flags("".join(sorted(_letter(flag) for flag in flags)))
        entry.set_subdir("cur")
        self._maildir(folder).add(entry)


def _letter(flag: str) -> str:
    letter = FLAG_LETTERS.get(flag_key(flag))
    if letter is None:
        raise CapabilityError(f"Maildir can't store the keyword {flag!r}; only system flags can be set here")
    return letter


def _imap_flags(message: stdlib_mailbox.MaildirMessage) -> frozenset[str]:
    return frozenset(LETTER_FLAGS[letter] for letter in message.get_flags() if letter in LETTER_FLAGS)


def _arrival(message: stdlib_mailbox.MaildirMessage) -> datetime:
    # Dovecot uses the file's mtime as INTERNALDATE; the stdlib exposes it as get_date().
    return datetime.fromtimestamp(message.get_date(), tz=timezone.utc)
