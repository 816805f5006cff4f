"""One run per account and per mailbox at a time: advisory ``flock``s on lock files.

Two locks: one per account name beside the state file, and one per mailbox (server,
port and user, or a Maildir's real path) in a directory that doesn't depend on the
state file, so runs with different ``--state`` or ``XDG_STATE_HOME`` still exclude each
other.  Beside the mailbox lock, an owner file names the state file that keeps the
mailbox, so a second state file for it is refused instead of repeating its work.

The kernel drops an ``flock`` when its holder exits, however it exits, so a crashed
run never leaves a stale lock behind.  The file only tells the next run who holds it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from mailrules.errors import LockHeld, StateStoreError, UsageError


def lock_path(state_dir: Path, account: str) -> Path:
    """The lock file of ``account``: readable name, plus a hash so distinct names never collide.

    >>> lock_path(Path("/s"), "alice@example.org").name
    'alice_example.org-7a64adf2.lock'
    """
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", account)[:60]
    digest = hashlib.sha256(account.encode()).hexdigest()[:8]
    return state_dir / "locks" / f"{readable}-{digest}.lock"


@contextmanager
def account_lock(state_dir: Path, account: str) -> Iterator[None]:
    """Hold the account's lock for the ``with`` block, or raise ``LockHeld`` at once."""
    path = lock_path(state_dir, account)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise UsageError(f"can't create the lock file {path}: {exc.strerror or exc}") from exc
    try:
        _take(fd, f"for account {account}")
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays, unlinking it would race with the next locker


def _take(fd: int, what: str, about: str = "") -> None:
    """``flock`` the open lock file and say who holds it, or raise ``LockHeld`` naming the holder."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise LockHeld(f"another mailrules run {what} is in progress ({_holder(fd)}); "
                       f"try again when it has finished") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} since {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S UTC}{about}\n".encode())


def _holder(fd: int) -> str:
    """What the holder wrote about itself (it may not have written it yet)."""
    text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    return text or "pid unknown"


# ---------------------------------------------------------------- one run per mailbox

LOCK_DIR_ENV = "MAILRULES_LOCK_DIR"


def imap_identity(host: str, port: int, username: str) -> str:
    """The mailbox an IMAP account names, whatever the account is called in which file.

    >>> imap_identity("IMAP.Example.org", 993, "alice")
    'imap://alice@imap.example.org:993'
    """
    return f"imap://{username}@{host.lower().rstrip('.')}:{port}"


def maildir_identity(path: str | Path) -> str:
    """A Maildir by its real path, so a symlink and its target are one mailbox."""
    return f"maildir:{os.path.realpath(path)}"


def lock_dir() -> Path:
    """Where mailbox locks live: the same place whatever ``--state`` or ``XDG_STATE_HOME`` say.

    ``/tmp/mailrules-<uid>`` unless ``MAILRULES_LOCK_DIR`` names another.  Not
    ``XDG_RUNTIME_DIR``: cron doesn't set it, so a cron job and a login shell would lock
    in two places.
    """
    override = os.environ.get(LOCK_DIR_ENV)
    return Path(override) if override else Path("/tmp") / f"mailrules-{os.getuid()}"


def mailbox_key(identity: str) -> str:
    """A file name for a mailbox: hashed, so it says nothing about the account to other users."""
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


@contextmanager
def mailbox_lock(identity: str, state_path: Path) -> Iterator[str | None]:
    """Hold the mailbox's lock and claim it for ``state_path``, or raise at once.

    ``LockHeld`` when another run on the mailbox is in progress, whichever state file it
    uses; ``StateStoreError`` when another state file keeps this mailbox.  Yields a note
    when this state file takes over a mailbox whose former state file is gone.
    """
    directory = _private_dir(lock_dir())
    path = directory / f"{mailbox_key(identity)}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StateStoreError(f"can't create the lock file {path}: {exc.strerror or exc}; "
                              f"make {directory} writable or set {LOCK_DIR_ENV} to a directory that is") from exc
    try:
        _take(fd, f"on mailbox {identity}", f", state {state_path}")
        yield _claim(directory / f"{mailbox_key(identity)}.owner", identity, state_path.resolve())
    finally:
        os.close(fd)


def _private_dir(directory: Path) -> Path:
    """The lock directory, made 0700; refused if someone else could plant files in it."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(directory)
    except OSError as exc:
        raise StateStoreError(f"can't create the lock directory {directory}: {exc.strerror or exc}; "
                              f"set {LOCK_DIR_ENV} to a directory of your own") from exc
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise StateStoreError(f"the lock directory {directory} is not a private directory of this user "
                              f"(a symlink, someone else's, or writable by others); remove it, or set "
                              f"{LOCK_DIR_ENV} to a directory of your own")
    return directory


def _claim(owner_file: Path, identity: str, state_path: Path) -> str | None:
    """Record ``state_path`` as the keeper of the mailbox; refuse if another state file keeps it.

    Two state files for one mailbox each miss what the other journalled and applied, so
    the second would redo copies and replies the first already made.
    """
    keeper = _keeper(owner_file)
    if keeper == state_path:
        return None
    if keeper is not None and keeper.exists():
        raise StateStoreError(
            f"mailbox {identity} is kept by the state file {keeper}, not {state_path}: two state files for one "
            f"mailbox would each repeat what the other did. Run with --state {keeper}; or, to keep this mailbox "
            f"in {state_path} from now on, move {keeper} there (the journal goes with it)")
    text = json.dumps({"mailbox": identity, "state": str(state_path),
                       "since": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S UTC}"})
    temporary = owner_file.with_suffix(".tmp")
    temporary.write_text(text + "\n")
    os.replace(temporary, owner_file)
    if keeper is None:
        return None
    return f"mailbox {identity} was kept by {keeper}, which no longer exists; {state_path} keeps it from now on"


def _keeper(owner_file: Path) -> Path | None:
    try:
        return Path(json.loads(owner_file.read_text())["state"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
