"""One run per account at a time: an advisory ``flock`` on a per-account lock file.

The kernel drops an ``flock`` when its holder exits, however it exits, so a crashed
run never leaves a stale lock behind.  The file only tells the next run who holds it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from mailrules.errors import LockHeld, UsageError


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
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(f"another mailrules run for account {account} is in progress ({_holder(fd)}); "
                           f"try again when it has finished") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S UTC}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays, unlinking it would race with the next locker


def _holder(fd: int) -> str:
    """What the holder wrote about itself (it may not have written it yet)."""
    text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    return text or "pid unknown"
