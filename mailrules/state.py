"""What mailrules remembers between runs, in one SQLite file per user.

- ``folders``: per account and folder, the UIDVALIDITY and highest UID already seen,
  so a run can look at new mail only.
- ``runs`` and ``operations``: a journal.  Each operation is written as an *intent*
  before it is sent to the server and marked *done* (or *failed*) afterwards, so a
  run cut off halfway leaves intents that the next run settles first.
- ``applied``: actions that must not be repeated on the same message (a copy by a
  rule to a folder, a reply, a redirect).
- ``replies_sent``: when each sender last got an auto-reply from each rule (``once_per``).
- ``transfer_prints``: per COPY/MOVE intent, each message's fingerprint (Message-ID, or
  Date|From|Subject without one; size; INTERNALDATE), to tell after an interruption which
  messages already reached the destination.
- ``dest_floors``: per destination folder, a UID below which no copy of ours can land.
- ``duplicate_watch``: reconciled transfers whose destination the next run checks for
  copies a dying server delivered late.

Passwords are never stored here.  The schema version lives in ``PRAGMA user_version``;
each migration step upgrades it by one.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from mailrules.errors import MailrulesError, StateStoreError, UsageError
from mailrules.uidset import parse_uid_set, uid_set

KINDS = frozenset({"flag", "unflag", "copy", "move", "trash", "delete", "reply", "redirect"})
Clock = Callable[[], datetime]

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE folders (
        account     TEXT NOT NULL,
        folder      TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        highest_uid INTEGER NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (account, folder)
    );
    CREATE TABLE runs (
        id           INTEGER PRIMARY KEY,
        account      TEXT NOT NULL,
        started_at   TEXT NOT NULL,
        finished_at  TEXT,
        mode         TEXT NOT NULL,
        status       TEXT NOT NULL DEFAULT 'running',
        summary_json TEXT
    );
    CREATE INDEX runs_by_account ON runs (account, id);
    CREATE TABLE operations (
        id           INTEGER PRIMARY KEY,
        run_id       INTEGER NOT NULL REFERENCES runs (id),
        account      TEXT NOT NULL,
        folder       TEXT NOT NULL,
        uidvalidity  INTEGER NOT NULL,
        rule         TEXT,
        kind         TEXT NOT NULL,
        uids         TEXT NOT NULL,
        destination  TEXT,
        details_json TEXT NOT NULL DEFAULT '{}',
        result_json  TEXT,
        error        TEXT,
        status       TEXT NOT NULL DEFAULT 'intent' CHECK (status IN ('intent', 'done', 'failed')),
        created_at   TEXT NOT NULL
    );
    CREATE INDEX operations_by_status ON operations (account, status);
    CREATE INDEX operations_by_run ON operations (run_id);
    CREATE TABLE applied (
        account     TEXT NOT NULL,
        folder      TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid         INTEGER NOT NULL,
        rule        TEXT NOT NULL,
        kind        TEXT NOT NULL,
        target      TEXT NOT NULL,
        applied_at  TEXT NOT NULL,
        PRIMARY KEY (account, folder, uidvalidity, uid, rule, kind, target)
    ) WITHOUT ROWID;
    CREATE TABLE replies_sent (
        account TEXT NOT NULL,
        rule    TEXT NOT NULL,
        sender  TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        PRIMARY KEY (account, rule, sender)
    ) WITHOUT ROWID;
    """,
    # Transfers whose outcome a dropped connection or a dying server left unknown are
    # reconciled message by message, so each COPY/MOVE intent keeps what identifies its
    # messages in any folder; the destinations' UID floors bound where copies can land.
    """
    CREATE TABLE transfer_prints (
        op_id        INTEGER NOT NULL REFERENCES operations (id),
        uid          INTEGER NOT NULL,
        ident        TEXT NOT NULL,
        size         INTEGER NOT NULL,
        internaldate TEXT NOT NULL,
        PRIMARY KEY (op_id, uid)
    ) WITHOUT ROWID;
    CREATE TABLE dest_floors (
        account     TEXT NOT NULL,
        folder      TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid_floor   INTEGER NOT NULL,
        PRIMARY KEY (account, folder)
    ) WITHOUT ROWID;
    CREATE TABLE duplicate_watch (
        op_id            INTEGER PRIMARY KEY REFERENCES operations (id),
        account          TEXT NOT NULL,
        destination      TEXT NOT NULL,
        dest_uidvalidity INTEGER NOT NULL,
        uid_floor        INTEGER NOT NULL,
        created_at       TEXT NOT NULL
    );
    """,
)


def default_state_path() -> Path:
    """``$XDG_STATE_HOME/mailrules/state.sqlite3``, by default under ``~/.local/state``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mailrules" / "state.sqlite3"


class JournalOp(Protocol):
    """What ``record_intent`` needs to know about an operation (the executor's ``Operation``)."""

    folder: str
    uidvalidity: int
    kind: str
    uids: Sequence[int]
    destination: str | None
    rule: str | None


@dataclass(frozen=True, slots=True)
class Intent:
    """A journalled operation; ``details`` holds every field the executor recorded."""

    id: int
    run_id: int
    account: str
    folder: str
    uidvalidity: int
    rule: str | None
    kind: str
    uids: tuple[int, ...]
    destination: str | None
    details: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    account: str
    started_at: datetime
    finished_at: datetime | None
    mode: str
    status: str
    summary: dict[str, Any] | None
    operations: int


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journalled operation of a run as ``history`` shows it: what, where, and how it ended."""

    id: int
    run_id: int
    folder: str
    rule: str | None
    kind: str
    uids: tuple[int, ...]
    destination: str | None
    flags: tuple[str, ...]
    status: str  # intent (never finished) | done | failed
    error: str | None
    created_at: datetime


class AppliedAction(NamedTuple):
    """A non-idempotent action done to one message: ``rule`` is None when not recorded."""

    uid: int
    rule: str | None
    kind: str
    target: str


class State:
    """The state database.  One instance per process; every write is its own transaction."""

    def __init__(self, path: Path | str | None = None, *, clock: Clock | None = None, timeout: float = 30.0):
        self.path = Path(path) if path is not None else default_state_path()
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._db = _open(self.path, timeout)

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:  # a checkpoint that can't run now runs on the next open; nothing is lost
            pass

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so two processes never interleave a write.
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                _rollback(self._db)
                raise
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from exc

    def _now(self) -> str:
        return _stamp(self._clock())

    # ------------------------------------------------------------ runs and the journal

    def begin_run(self, account: str, mode: str) -> int:
        with self._write() as db:
            cursor = db.execute("INSERT INTO runs (account, started_at, mode) VALUES (?, ?, ?)",
                                (account, self._now(), mode))
        return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, summary: Mapping[str, Any] | None = None) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET finished_at = ?, status = ?, summary_json = ? WHERE id = ?",
                       (self._now(), status, _json(summary), run_id))

    def record_intent(self, run_id: int, account: str, op: JournalOp) -> int:
        """Journal ``op`` before it is sent; returns the id to mark it done or failed."""
        if op.kind not in KINDS:
            raise ValueError(f"unknown operation kind {op.kind!r}; expected one of {sorted(KINDS)}")
        details = dataclasses.asdict(op) if dataclasses.is_dataclass(op) else {}  # type: ignore[call-overload]
        prints = details.pop("fingerprints", None) or ()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO operations (run_id, account, folder, uidvalidity, rule, kind, uids, destination,"
                " details_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, account, op.folder, op.uidvalidity, op.rule, op.kind, uid_set(op.uids), op.destination,
                 _json(details), self._now()),
            )
            op_id = int(cursor.lastrowid or 0)
            db.executemany("INSERT OR REPLACE INTO transfer_prints VALUES (?, ?, ?, ?, ?)",
                           [(op_id, int(uid), str(ident), int(size), str(when)) for uid, (ident, size, when) in prints])
        return op_id

    def transfer_prints(self, op_id: int) -> list[tuple[int, tuple[str, int, str]]]:
        """(uid, fingerprint) of each message of a COPY/MOVE intent, in UID order."""
        rows = self._db.execute("SELECT uid, ident, size, internaldate FROM transfer_prints WHERE op_id = ? ORDER BY uid",
                                (op_id,))
        return [(int(uid), (ident, int(size), when)) for uid, ident, size, when in rows]

    # ------------------------------------------------------------ where copies can land

    def dest_floor(self, account: str, folder: str) -> tuple[int, int] | None:
        """(UIDVALIDITY, UID) of ``folder``: every copy made from now on gets a UID at or above it."""
        row = self._db.execute("SELECT uidvalidity, uid_floor FROM dest_floors WHERE account = ? AND folder = ?",
                               (account, folder)).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def raise_dest_floor(self, account: str, folder: str, uidvalidity: int, uid_floor: int) -> None:
        """Remember a higher floor (a new UIDVALIDITY replaces the old one outright)."""
        with self._write() as db:
            db.execute(
                "INSERT INTO dest_floors VALUES (?, ?, ?, ?) ON CONFLICT (account, folder) DO UPDATE SET"
                "  uid_floor = CASE WHEN uidvalidity = excluded.uidvalidity"
                "                   THEN max(uid_floor, excluded.uid_floor) ELSE excluded.uid_floor END,"
                "  uidvalidity = excluded.uidvalidity",
                (account, folder, uidvalidity, uid_floor),
            )

    def watch_duplicates(self, account: str, op_id: int, destination: str, uidvalidity: int, uid_floor: int) -> None:
        """Have the next run look for late copies of ``op_id``'s messages at or above ``uid_floor``."""
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO duplicate_watch VALUES (?, ?, ?, ?, ?, ?)",
                       (op_id, account, destination, uidvalidity, uid_floor, self._now()))

    def duplicate_watches(self, account: str) -> list[tuple[int, str, int, int, datetime]]:
        """(op_id, destination, UIDVALIDITY, floor, when) of the transfers to check for late copies."""
        rows = self._db.execute("SELECT op_id, destination, dest_uidvalidity, uid_floor, created_at"
                                " FROM duplicate_watch WHERE account = ? ORDER BY op_id", (account,))
        return [(int(op), dest, int(validity), int(floor), _parse_stamp(when)) for op, dest, validity, floor, when in rows]

    def retire_watch(self, op_id: int) -> None:
        with self._write() as db:
            db.execute("DELETE FROM duplicate_watch WHERE op_id = ?", (op_id,))
            _forget_prints(db, op_id)

    def mark_done(self, op_id: int, result: Mapping[str, Any] | None = None) -> None:
        with self._write() as db:
            prints = self.transfer_prints(op_id)
            if prints and result is not None:
                # A finished transfer keeps what its messages are, so `undo` can tell them from others.
                result = {**result, "prints": [[uid, list(print_)] for uid, print_ in prints]}
            db.execute("UPDATE operations SET status = 'done', result_json = ? WHERE id = ?", (_json(result), op_id))
            _forget_prints(db, op_id)

    def mark_failed(self, op_id: int, error: str) -> None:
        with self._write() as db:
            db.execute("UPDATE operations SET status = 'failed', error = ? WHERE id = ?", (error, op_id))
            _forget_prints(db, op_id)

    def pending_intents(self, account: str) -> list[Intent]:
        """Operations sent (or about to be) but never marked done or failed: a run was cut off."""
        rows = self._db.execute(
            "SELECT id, run_id, account, folder, uidvalidity, rule, kind, uids, destination, details_json, created_at"
            " FROM operations WHERE account = ? AND status = 'intent' ORDER BY id",
            (account,),
        )
        intents = [_intent(row) for row in rows]
        for intent in intents:
            prints = self.transfer_prints(intent.id)
            if prints:
                intent.details["fingerprints"] = [[uid, list(print_)] for uid, print_ in prints]
        return intents

    def run_intents(self, run_id: int) -> list[tuple[Intent, str, dict[str, Any]]]:
        """Every operation of a run in full, as sent: the intent, its status, and its result (COPYUID maps)."""
        rows = self._db.execute(
            "SELECT id, run_id, account, folder, uidvalidity, rule, kind, uids, destination, details_json, created_at,"
            " status, result_json FROM operations WHERE run_id = ? ORDER BY id",
            (run_id,),
        ).fetchall()
        found = []
        for row in rows:
            intent = _intent(row[:11])
            prints = self.transfer_prints(intent.id)
            if prints:
                intent.details["fingerprints"] = [[uid, list(print_)] for uid, print_ in prints]
            found.append((intent, str(row[11]), json.loads(row[12]) if row[12] else {}))
        return found

    def recent_runs(self, account: str | None = None, limit: int = 20) -> list[RunRecord]:
        """The latest runs, newest first, with how many operations each journalled."""
        rows = self._db.execute(
            "SELECT r.id, r.account, r.started_at, r.finished_at, r.mode, r.status, r.summary_json,"
            " (SELECT count(*) FROM operations o WHERE o.run_id = r.id)"
            " FROM runs r WHERE ? IS NULL OR r.account = ? ORDER BY r.id DESC LIMIT ?",
            (account, account, limit),
        )
        return [_run(row) for row in rows]

    def accounts(self) -> list[str]:
        """Every account the database has a run or a folder of, by name."""
        rows = self._db.execute("SELECT account FROM runs UNION SELECT account FROM folders ORDER BY 1")
        return [str(row[0]) for row in rows]

    def run(self, run_id: int) -> RunRecord | None:
        """One run by its id, or None."""
        row = self._db.execute(
            "SELECT r.id, r.account, r.started_at, r.finished_at, r.mode, r.status, r.summary_json,"
            " (SELECT count(*) FROM operations o WHERE o.run_id = r.id) FROM runs r WHERE r.id = ?",
            (run_id,),
        ).fetchone()
        return _run(row) if row else None

    def run_operations(self, run_id: int) -> list[JournalEntry]:
        """Every operation a run journalled, in the order it was sent."""
        rows = self._db.execute(
            "SELECT id, run_id, folder, rule, kind, uids, destination, details_json, status, error, created_at"
            " FROM operations WHERE run_id = ? ORDER BY id",
            (run_id,),
        )
        return [_entry(row) for row in rows]

    # ------------------------------------------------------------ folders

    def folder_state(self, account: str, folder: str) -> tuple[int, int] | None:
        """(UIDVALIDITY, highest UID seen) of a folder, or None if never seen."""
        row = self._db.execute("SELECT uidvalidity, highest_uid FROM folders WHERE account = ? AND folder = ?",
                               (account, folder)).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def set_folder_state(self, account: str, folder: str, uidvalidity: int, highest_uid: int) -> None:
        """Remember the folder's generation and progress.

        The highest UID only grows within one UIDVALIDITY.  A new UIDVALIDITY means the
        folder's UIDs name other messages now, so what was applied under the old one is
        dropped with it.
        """
        with self._write() as db:
            db.execute(
                "INSERT INTO folders (account, folder, uidvalidity, highest_uid, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (account, folder) DO UPDATE SET"
                "  highest_uid = CASE WHEN uidvalidity = excluded.uidvalidity"
                "                     THEN max(highest_uid, excluded.highest_uid) ELSE excluded.highest_uid END,"
                "  uidvalidity = excluded.uidvalidity, updated_at = excluded.updated_at",
                (account, folder, uidvalidity, highest_uid, self._now()),
            )
            db.execute("DELETE FROM applied WHERE account = ? AND folder = ? AND uidvalidity != ?",
                       (account, folder, uidvalidity))

    # ------------------------------------------------------------ actions not to repeat

    def record_applied(self, account: str, folder: str, uidvalidity: int,
                       actions: Iterable[tuple[int, str | None, str, str | None]]) -> None:
        """Remember (uid, rule, kind, target) actions; recording one twice is harmless."""
        now = self._now()
        rows = [(account, folder, uidvalidity, uid, rule or "", kind, target or "", now)
                for uid, rule, kind, target in actions]
        with self._write() as db:
            db.executemany("INSERT OR IGNORE INTO applied VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def already_applied(self, account: str, folder: str, uidvalidity: int,
                        uids: Iterable[int] | None = None) -> set[AppliedAction]:
        """The recorded actions for these UIDs of the folder (all of its UIDs when None)."""
        query = "SELECT uid, rule, kind, target FROM applied WHERE account = ? AND folder = ? AND uidvalidity = ?"
        params: tuple[Any, ...] = (account, folder, uidvalidity)
        if uids is None:
            return {_applied(row) for row in self._db.execute(query, params)}
        found: set[AppliedAction] = set()
        wanted = sorted(set(uids))
        for start in range(0, len(wanted), 500):  # stay far below SQLite's bound-parameter limit
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(_applied(row) for row in self._db.execute(f"{query} AND uid IN ({marks})", params + tuple(chunk)))
        return found

    def last_reply(self, account: str, rule: str, sender: str) -> datetime | None:
        row = self._db.execute("SELECT sent_at FROM replies_sent WHERE account = ? AND rule = ? AND sender = ?",
                               (account, rule, sender.lower())).fetchone()
        return _parse_stamp(row[0]) if row else None

    def record_reply(self, account: str, rule: str, sender: str, sent_at: datetime | None = None) -> None:
        with self._write() as db:
            db.execute("INSERT INTO replies_sent VALUES (?, ?, ?, ?)"
                       " ON CONFLICT (account, rule, sender) DO UPDATE SET sent_at = excluded.sent_at",
                       (account, rule, sender.lower(), _stamp(sent_at) if sent_at else self._now()))


def _forget_prints(db: sqlite3.Connection, op_id: int) -> None:
    """A settled transfer needs its fingerprints only while the next run checks it for late copies."""
    db.execute("DELETE FROM transfer_prints WHERE op_id = ? AND op_id NOT IN (SELECT op_id FROM duplicate_watch)",
               (op_id,))


# ---------------------------------------------------------------- opening and migrating


def _open(path: Path, timeout: float) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fresh = not path.exists()
        with ExitStack() as on_failure:
            db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
            on_failure.callback(db.close)
            if fresh:
                path.chmod(0o600)  # it names the people who wrote to you
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")  # an intent must be on disk before the server acts
            db.execute("PRAGMA foreign_keys = ON")
            _migrate(db, path)
            on_failure.pop_all()
    except (sqlite3.Error, OSError) as exc:
        raise store_error(path, exc) from exc
    return db


# What each fault needs from the user.  None of them asks to delete the file: its journal
# is what lets the next run settle an interrupted one without repeating anything.
_FULL = "free some space there and run again; the journal in it is kept and the next run settles what this one left"
_READ_ONLY = ("make the file and its directory writable by this user (or remount them read-write) and run again; "
              "keep the file where it is, its journal tells the next run what this one did")
_LOCKED = ("another program holds it locked (an open sqlite3 shell, a backup or a sync tool?); "
           "close that and run again")
_SQLITE_FAULTS = {"SQLITE_FULL": ("the disk holding it is full", _FULL),
                  "SQLITE_READONLY": ("it can't be written", _READ_ONLY),
                  "SQLITE_PERM": ("it can't be written", _READ_ONLY),
                  "SQLITE_CANTOPEN": ("it can't be opened or created", _READ_ONLY),
                  "SQLITE_BUSY": ("it stayed locked", _LOCKED),
                  "SQLITE_LOCKED": ("it stayed locked", _LOCKED)}
_OS_FAULTS = {errno.ENOSPC: ("the disk holding it is full", _FULL),
              errno.EDQUOT: ("the disk quota is used up", _FULL),
              errno.EROFS: ("it is on a read-only file system", _READ_ONLY),
              errno.EACCES: ("it can't be written", _READ_ONLY),
              errno.EPERM: ("it can't be written", _READ_ONLY)}


def store_error(path: Path, exc: sqlite3.Error | OSError) -> MailrulesError:
    """The error a user sees for a state file that can't be used: what went wrong and what to do.

    Every one is a ``StateStoreError`` (exit 6: fix it, then run); only a file that is not
    (or no longer) a database may be moved aside, never a sound one.
    """
    detail = str(exc.strerror or exc) if isinstance(exc, OSError) else str(exc)
    # The file system's own state first: SQLite often says only "disk I/O error" or
    # "unable to open database file" when the disk is full or mounted read-only.
    fault = _disk_fault(path)
    if fault is None and isinstance(exc, OSError):
        fault = _OS_FAULTS.get(exc.errno or 0)
    elif fault is None:
        fault = _SQLITE_FAULTS.get(_base_code_name(exc))
    if fault is not None:
        what, todo = fault
        return StateStoreError(f"can't write the state file {path}: {what} ({detail}); {todo}")
    if isinstance(exc, sqlite3.DatabaseError) and _base_code_name(exc) in ("SQLITE_NOTADB", "SQLITE_CORRUPT", ""):
        return StateStoreError(f"can't use the state file {path}: {detail}; it is not a mailrules state database "
                               "(or it is damaged): point --state at the right file, or move this one aside "
                               "(keep it) to start afresh")
    return StateStoreError(f"can't use the state file {path}: {detail}; fix that and run again, keeping the file")


def _disk_fault(path: Path) -> tuple[str, str] | None:
    """What the file system says when SQLite reports only "disk I/O error" (a full tmpfs, say)."""
    existing = next((parent for parent in (path, *path.parents) if parent.exists()), None)
    try:
        disk = os.statvfs(existing or ".")
    except OSError:
        return None
    if disk.f_flag & os.ST_RDONLY:
        return _OS_FAULTS[errno.EROFS]
    if disk.f_bavail == 0 or (disk.f_files and disk.f_favail == 0):
        return _OS_FAULTS[errno.ENOSPC]
    return None


def _base_code_name(exc: sqlite3.Error) -> str:
    """``SQLITE_READONLY`` for ``SQLITE_READONLY_DIRECTORY`` and the like; ``""`` when unknown."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    return "_".join(name.split("_")[:2])


def _rollback(db: sqlite3.Connection) -> None:
    """Undo an open transaction; after a failed COMMIT SQLite may already have rolled it back."""
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise UsageError(f"the state file {path} has schema version {version}, newer than this mailrules "
                         f"understands ({len(MIGRATIONS)}); upgrade mailrules or use another state file")
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise


# ---------------------------------------------------------------- row conversion


def _stamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("state timestamps must be timezone-aware")
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _parse_stamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=_jsonable)


def _jsonable(value: object) -> object:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} can't be journalled")


def _intent(row: Sequence[Any]) -> Intent:
    op_id, run_id, account, folder, uidvalidity, rule, kind, uids, destination, details, created = row
    return Intent(op_id, run_id, account, folder, uidvalidity, rule, kind, tuple(parse_uid_set(uids)) if uids else (),
                  destination, json.loads(details), _parse_stamp(created))


def _entry(row: Sequence[Any]) -> JournalEntry:
    op_id, run_id, folder, rule, kind, uids, destination, details, status, error, created = row
    flags = json.loads(details).get("flags") or ()
    return JournalEntry(op_id, run_id, folder, rule, kind, tuple(parse_uid_set(uids)) if uids else (), destination,
                        tuple(flags), status, error, _parse_stamp(created))


def _run(row: Sequence[Any]) -> RunRecord:
    run_id, account, started, finished, mode, status, summary, operations = row
    return RunRecord(run_id, account, _parse_stamp(started), _parse_stamp(finished) if finished else None, mode,
                     status, json.loads(summary) if summary else None, int(operations))


def _applied(row: Sequence[Any]) -> AppliedAction:
    uid, rule, kind, target = row
    return AppliedAction(int(uid), rule or None, kind, target)
