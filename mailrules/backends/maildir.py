"""A local Maildir (Maildir++ layout, as Dovecot and Courier keep it) behind the Mailbox protocol.

Maildir has no UIDs, so messages are numbered in key order when a folder is opened, and
each process gets its own UIDVALIDITY: the numbering is stable from planning to execution
within one ``run``, and ``--new-only`` state from an earlier process never applies (a
local full scan is cheap).

Folder names are stored as Dovecot stores them in Maildir++, so a Maildir that Dovecot
serves shows the same folders: ``A/B`` is the directory ``.A.B``; each level is in
modified UTF-7 (RFC 3501 §5.1.3, ``Grüße`` is ``Gr&APw-&AN8-e``), and the characters
Maildir++ can't hold in a level are escaped as Dovecot's listescape plugin does: ``.`` as
``\\2e``, ``\\`` as ``\\5c``, a leading ``~`` as ``\\7e`` (``Ops/v1.2`` is ``.Ops.v1\\2e2``).
Directories other tools wrote in raw UTF-8 are read too.

Keywords are kept as Dovecot keeps them, so a Maildir that Dovecot serves shows them: each
folder's ``dovecot-keywords`` file names up to 26 keywords (lines ``N name``, N = 0..25),
and a message carries keyword N as the letter ``chr(ord('a') + N)`` in its file name's info
part, after the system flag letters (``…:2,FSab``, sorted).  Flag changes rename the file;
its contents are never rewritten.
"""

from __future__ import annotations

import itertools
import mailbox as stdlib_mailbox
import os
import re
import socket
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path


from mailrules.backends import utf7
from mailrules.backends.base import CopyResult, FetchNeeds, Features, FolderStatus, StoreDefaults
from mailrules.errors import BackendError, CapabilityError, ConfigurationError, FolderRefused, MissingFolder
from mailrules.message import MessageView
from mailrules.model import flag_key
from mailrules.query import SearchQuery

# Maildir info letters for the IMAP system flags (https://cr.yp.to/proto/maildir.html).
FLAG_LETTERS = {"\\draft": "D", "\\flagged": "F", "\\answered": "R", "\\seen": "S", "\\deleted": "T"}
LETTER_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}

DELIMITER = "/"
KEYWORDS_FILE = "dovecot-keywords"
KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"  # Dovecot's 26 keyword slots, a = 0
_deliveries = itertools.count(1)
# Dovecot's dotlock on dovecot-keywords: an older lock file is stale (its holder died), and a
# live one is waited for at most this long before the change is given up as transient.
KEYWORDS_LOCK_STALE_SECONDS = 120
KEYWORDS_LOCK_WAIT_SECONDS = 10
NAME_MAX = 255  # bytes in one directory name, and a Maildir++ folder is one directory
_ESCAPED = re.compile(r"\\([0-9a-fA-F]{2})")


class MaildirMailbox(StoreDefaults):
    """Folders of a Maildir++ tree: the root is INBOX, ``.A.B`` is ``A/B``."""

    delimiter = DELIMITER
    # MOVE here is "add to the destination, then remove the original": never a loss.
    # move() writes the copy and syncs it before the original goes, so the executor needs no
    # copy-then-remove of its own; search() returns every message and the local evaluator decides.
    features = Features(supports_move=True, expunges_by_uid=True, exact_search=False, keywords=True,
                        keyword_slots=len(KEYWORD_LETTERS))

    def __init__(self, path: str | os.PathLike[str]):
        self.root = Path(path)
        if not self.root.exists():
            raise ConfigurationError(f"the Maildir {self.root} does not exist; check the account's maildir "
                                     "(or --maildir) path")
        if not (self.root / "cur").is_dir():
            raise ConfigurationError(f"{self.root} is not a Maildir (no cur/ folder)")
        super().__init__()
        self.label = f"maildir:{self.root}"
        self._uidvalidity = int(time.time())
        self._folder: str | None = None
        self._keys: list[str] = []
        self._planned_bases: dict[str, set[str]] = {}

    # ------------------------------------------------------------ folders

    def _folder_dir(self, folder: str) -> Path:
        if folder.upper() == "INBOX":
            return self.root
        encoded = self.root / folder_directory(folder)
        raw = self.root / ("." + folder.replace(DELIMITER, "."))
        if raw != encoded and "." not in folder and "\\" not in folder and (raw / "cur").is_dir() \
                and not (encoded / "cur").is_dir():
            return raw  # written in raw UTF-8 by another tool: keep using it
        return encoded

    def folder_problem(self, folder: str) -> str | None:
        """Why a rule's folder name can't name a folder in this Maildir, or None."""
        if folder.upper() == "INBOX":
            return None
        size = len(folder_directory(folder).encode("ascii"))
        if size > NAME_MAX:
            return (f"folder {folder!r} can't exist in this Maildir: its Maildir++ directory name would be "
                    f"{size} bytes, longer than the {NAME_MAX} a file name can have")
        return None

    def _maildir(self, folder: str) -> stdlib_mailbox.Maildir:
        path = self._folder_dir(folder)
        if not (path / "cur").is_dir():
            raise BackendError("no such folder", folder=folder)
        return stdlib_mailbox.Maildir(path, factory=None, create=False)

    def _destination(self, folder: str) -> None:
        """Fail before anything is written when a COPY/APPEND destination is missing."""
        if not (self._folder_dir(folder) / "cur").is_dir():
            raise MissingFolder("no such folder", folder=folder)

    def list_folders(self) -> list[str]:
        self._planned_bases.clear()  # a plan starts here: what earlier runs copied is read afresh
        names = {"INBOX": None}
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") and entry.name not in (".", "..") and (entry / "cur").is_dir():
                names[folder_name(entry.name)] = None
        return list(names)

    def create_folder(self, folder: str) -> None:
        problem = self.folder_problem(folder)
        if problem is not None:
            raise FolderRefused(problem, folder=folder)
        path = self._folder_dir(folder)
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        (path / "maildirfolder").touch()

    def status(self, folder: str) -> FolderStatus:
        count = sum(1 for key in self._maildir(folder).keys() if not key.startswith("."))
        return FolderStatus(folder, self._uidvalidity, count + 1, count)

    def open_folder(self, folder: str, *, readonly: bool) -> FolderStatus:
        self._folder = folder
        if not readonly:
            self._planned_bases.clear()
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

    def search(self, query: SearchQuery, *, min_uid: int = 1) -> list[int]:
        return list(range(max(min_uid, 1), len(self._keys) + 1))

    def fetch(self, uids: Sequence[int], needs: FetchNeeds) -> Iterator[tuple[int, MessageView]]:
        box = self._current()
        keywords = KeywordTable.read(self._folder_dir(self._folder or "INBOX"))
        for uid in uids:
            key = self._key(uid)
            if key is None:
                continue
            try:
                message = box.get_message(key)
                raw = box.get_bytes(key)
            except (KeyError, FileNotFoundError):
                continue  # removed by another client since the folder was opened
            yield uid, MessageView.from_bytes(raw, flags=_imap_flags(message, keywords),
                                              internaldate=_arrival(message))

    def fetch_raw(self, uid: int) -> bytes | None:
        key = self._key(uid)
        try:
            return self._current().get_bytes(key) if key else None
        except (KeyError, FileNotFoundError):
            return None

    # ------------------------------------------------------------ changing

    def unstorable_flags(self, folder: str, flags: Collection[str]) -> dict[str, str]:
        """The keywords among ``flags`` that ``folder`` has no letter left for, with the reason.

        Keywords the folder already names always fit; new ones take the free slots in sorted
        order, so planning and running pick the same ones.
        """
        table = KeywordTable.read(self._folder_dir(folder))
        new = sorted({flag for flag in flags if not flag.startswith("\\") and table.letter(flag) is None},
                     key=flag_key)
        free = table.free_slots()
        reason = (f"the Maildir folder {folder} already has {len(KEYWORD_LETTERS)} keywords in {KEYWORDS_FILE}, "
                  "as many as Maildir file names can carry (letters a-z)")
        return {flag: reason for flag in new[free:]}

    def _rewrite_flags(self, uids: Sequence[int], flags: Sequence[str], add: bool) -> None:
        box = self._current()
        directory = self._folder_dir(self._folder or "INBOX")
        with KeywordTable.locked(directory) as table:  # the names first: a letter on a file must never name nothing
            letters = {table.letter_for(flag, folder=self._folder or "INBOX") if add
                       else _system_letter(flag) or table.letter(flag) for flag in flags} - {None}
        for uid in uids:
            key = self._key(uid)
            if key is not None:
                _rename_with_flags(directory, box, key, letters, add)  # type: ignore[arg-type]

    def add_flags(self, uids: Sequence[int], flags: Sequence[str]) -> None:
        self._rewrite_flags(uids, flags, add=True)

    def remove_flags(self, uids: Sequence[int], flags: Sequence[str]) -> None:
        self._rewrite_flags(uids, flags, add=False)

    def copy(self, uids: Sequence[int], folder: str) -> CopyResult:
        source = self._current()
        self._destination(folder)
        source_keywords = KeywordTable.read(self._folder_dir(self._folder or "INBOX"))
        present = _bases(self._folder_dir(folder))  # read now: a copy must never be skipped on stale news
        for uid in uids:
            key = self._key(uid)
            try:
                message = source.get_message(key) if key is not None else None
                raw = source.get_bytes(key) if key is not None else None
            except (KeyError, FileNotFoundError):
                continue  # removed by another client since the folder was opened
            if message is None or raw is None:
                continue
            if key not in present:
                self._deliver(folder, raw, _imap_flags(message, source_keywords), message.get_date(), key)
                present.add(key)  # type: ignore[arg-type]
        return CopyResult(None, {})

    def holds_copy(self, uid: int, folder: str) -> bool:
        """Whether ``folder`` already has this process's copy of message ``uid`` of the open folder.

        A copy keeps its original's file name base, as Dovecot's own Maildir copies do, so a
        copy made by an earlier run is found again although Maildir UIDs don't outlive a process.
        """
        key = self._key(uid)
        if key is None:
            return False
        if folder not in self._planned_bases:  # read once per plan, not once per message
            self._planned_bases[folder] = _bases(self._folder_dir(folder))
        return key in self._planned_bases[folder]

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
        self._destination(folder)
        self._deliver(folder, message, flags, time.time())

    def _deliver(self, folder: str, raw: bytes, flags: Iterable[str], mtime: float, base: str | None = None) -> None:
        """Write one message into ``folder``'s cur/ with ``flags``, byte for byte (tmp, then link);
        ``base`` is its file name before the info part, a new unique one when None."""
        directory = self._folder_dir(folder)
        flags = [flag for flag in flags if flag_key(flag) != "\\recent"]
        table = KeywordTable.read(directory)
        if all(table.letter(flag) or _system_letter(flag) for flag in flags):
            letters = self._letters(table, flags, folder)
        else:
            with KeywordTable.locked(directory) as table:  # new keywords: allocated under Dovecot's lock
                letters = self._letters(table, flags, folder)
        _write_message(directory, raw, "".join(sorted(letters)), mtime, base)

    def _letters(self, table: KeywordTable, flags: Iterable[str], folder: str) -> set[str]:
        letters: set[str] = set()
        for flag in flags:
            letter = table.letter(flag) or _system_letter(flag) or table.letter_for(flag, folder=folder, strict=False)
            if letter is None:
                notice = (f"{folder}: no keyword letter left for {flag} (Maildir holds "
                          f"{len(KEYWORD_LETTERS)} per folder); copies arrived without it")
                if notice not in self.notices:
                    self.notices.append(notice)
                continue
            letters.add(letter)
        return letters


def folder_directory(folder: str) -> str:
    """The Maildir++ directory name of a ``/``-separated folder, as Dovecot names it.

    >>> folder_directory("Ops/v1.2"), folder_directory("Grüße/Köln"), folder_directory("~me")
    ('.Ops.v1\\\\2e2', '.Gr&APwA3w-e.K&APY-ln', '.\\\\7eme')
    """
    levels = folder.split(DELIMITER)
    escaped = [level.replace("\\", "\\5c").replace(".", "\\2e") for level in levels]
    if escaped[0].startswith("~"):
        escaped[0] = "\\7e" + escaped[0][1:]  # Dovecot would read a leading ~ as a home directory
    return "." + ".".join(utf7.encode(level) for level in escaped)


def folder_name(directory: str) -> str:
    """The folder a Maildir++ directory name (``.A.B``) stands for; the inverse of folder_directory.

    >>> folder_name(".Ops.v1\\\\2e2"), folder_name(".Gr&APwA3w-e"), folder_name(".Grüße"), folder_name(".a&b")
    ('Ops/v1.2', 'Grüße', 'Grüße', 'a&b')
    """
    return DELIMITER.join(_level_name(level) for level in directory[1:].split("."))


def _level_name(level: str) -> str:
    if level.isascii():
        try:
            level = utf7.decode(level)
        except (UnicodeDecodeError, ValueError):
            pass  # not modified UTF-7 after all: the name as it is
    return _ESCAPED.sub(_unescape, level)


def _unescape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    # An escaped delimiter would make a name no rule can address; it stays as written.
    return match.group(0) if char == DELIMITER else char


@dataclass
class KeywordTable:
    """A folder's ``dovecot-keywords``: which keyword each letter a-z stands for."""

    names: dict[int, str]
    changed: bool = False

    @classmethod
    def read(cls, directory: Path) -> KeywordTable:
        names: dict[int, str] = {}
        try:
            text = (directory / KEYWORDS_FILE).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return cls(names)
        except OSError as exc:
            raise BackendError(f"can't read {directory / KEYWORDS_FILE}: {exc.strerror}") from exc
        for line in text.splitlines():
            index, _, name = line.partition(" ")
            if index.isdigit() and int(index) < len(KEYWORD_LETTERS) and name:
                names[int(index)] = name
        return cls(names)

    @classmethod
    @contextmanager
    def locked(cls, directory: Path) -> Iterator[KeywordTable]:
        """The table as it is now, saved on the way out, under the dotlock Dovecot itself takes
        (``dovecot-keywords.lock``), so a keyword Dovecot adds meanwhile is neither lost nor
        given the same letter as ours."""
        lock = directory / f"{KEYWORDS_FILE}.lock"
        handle = _dotlock(lock)
        try:
            table = cls.read(directory)
            yield table
            table.save(directory)
        finally:
            os.close(handle)
            lock.unlink(missing_ok=True)

    def letter(self, flag: str) -> str | None:
        """The letter ``flag`` already has here (keywords compare case-insensitively), else None."""
        wanted = flag_key(flag)
        for index, name in self.names.items():
            if flag_key(name) == wanted:
                return KEYWORD_LETTERS[index]
        return None

    def name(self, letter: str) -> str | None:
        index = KEYWORD_LETTERS.find(letter)
        return self.names.get(index) if index >= 0 else None

    def free_slots(self) -> int:
        return len(KEYWORD_LETTERS) - len(self.names)

    def letter_for(self, flag: str, *, folder: str, strict: bool = True) -> str | None:
        """The letter for a system flag or keyword, giving a new keyword the lowest free slot.

        A full table raises (``strict``) or returns None.
        """
        letter = _system_letter(flag) or self.letter(flag)
        if letter is not None:
            return letter
        free = [index for index in range(len(KEYWORD_LETTERS)) if index not in self.names]
        if not free:
            if not strict:
                return None
            raise CapabilityError(f"no keyword letter left for {flag}: {KEYWORDS_FILE} names "
                                  f"{len(KEYWORD_LETTERS)} keywords already", folder=folder)
        self.names[free[0]] = flag
        self.changed = True
        return KEYWORD_LETTERS[free[0]]

    def save(self, directory: Path) -> None:
        if not self.changed:
            return
        text = "".join(f"{index} {name}\n" for index, name in sorted(self.names.items()))
        temporary = directory / f".{KEYWORDS_FILE}.{os.getpid()}.tmp"
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, directory / KEYWORDS_FILE)
        self.changed = False


def _dotlock(lock: Path) -> int:
    deadline = time.monotonic() + KEYWORDS_LOCK_WAIT_SECONDS
    while True:
        try:
            return os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            try:
                if time.time() - lock.stat().st_mtime > KEYWORDS_LOCK_STALE_SECONDS:
                    lock.unlink(missing_ok=True)
                    continue
            except FileNotFoundError:
                continue  # released meanwhile
            if time.monotonic() > deadline:
                raise BackendError(f"{lock} has been held by another program for over "
                                   f"{KEYWORDS_LOCK_WAIT_SECONDS} s; try again later") from None
            time.sleep(0.02)
        except OSError as exc:
            raise BackendError(f"can't lock {lock}: {exc.strerror}") from exc


def _system_letter(flag: str) -> str | None:
    return FLAG_LETTERS.get(flag_key(flag))


def _rename_with_flags(directory: Path, box: stdlib_mailbox.Maildir, key: str, letters: set[str], add: bool) -> None:
    """Give the message ``key`` its new flag letters by renaming its file into cur/."""
    try:
        message = box.get_message(key)
    except (KeyError, FileNotFoundError):
        return  # removed by another client since the folder was opened
    info = message.get_info()
    old_name = key + (":" + info if info else "")
    current = set(message.get_flags())
    flags = "".join(sorted(current | letters if add else current - letters))
    if message.get_subdir() == "cur" and set(flags) == current:
        return
    try:
        os.rename(directory / message.get_subdir() / old_name, directory / "cur" / f"{key}:2,{flags}")
    except FileNotFoundError:
        return


def _bases(directory: Path) -> set[str]:
    """The file name bases (before the info part) of the messages in a folder directory."""
    return {name.split(":", 1)[0] for sub in ("cur", "new") if (directory / sub).is_dir()
            for name in os.listdir(directory / sub)}


def _write_message(directory: Path, raw: bytes, letters: str, mtime: float, base: str | None) -> None:
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    now = time.time()
    unique = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_deliveries)}.{host}"
    temporary = directory / "tmp" / unique
    final = directory / "cur" / f"{base or unique}:2,{letters}"
    with open(temporary, "xb") as handle:
        handle.write(raw)
        handle.flush()
        os.fsync(handle.fileno())
    os.utime(temporary, (mtime, mtime))
    try:
        os.link(temporary, final)
    finally:
        temporary.unlink()


def _imap_flags(message: stdlib_mailbox.MaildirMessage, keywords: KeywordTable) -> frozenset[str]:
    flags = set()
    for letter in message.get_flags():
        flag = LETTER_FLAGS.get(letter) or keywords.name(letter)
        if flag is not None:
            flags.add(flag)
    return frozenset(flags)


def _arrival(message: stdlib_mailbox.MaildirMessage) -> datetime:
    # Dovecot uses the file's mtime as INTERNALDATE; the stdlib exposes it as get_date().
    return datetime.fromtimestamp(message.get_date(), tz=timezone.utc)
