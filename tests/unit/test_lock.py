"""One run per account and per mailbox: a second process gets LockHeld at once; a dead holder frees
the lock; a second state file for one mailbox is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mailrules.errors import LockHeld, StateStoreError
from mailrules.lock import (LOCK_DIR_ENV, account_lock, imap_identity, lock_dir, lock_path, mailbox_lock,
                            maildir_identity)

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """
import sys
from pathlib import Path
from mailrules.lock import account_lock
with account_lock(Path(sys.argv[1]), sys.argv[2]):
    print("locked", flush=True)
    sys.stdin.read()  # hold until the test closes our stdin (or kills us)
"""


@contextmanager
def holder(state_dir: Path, account: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the account's lock."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(state_dir), account], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_a_second_process_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    with holder(tmp_path, "alice@example.org") as proc:
        with pytest.raises(LockHeld, match=rf"account alice@example.org is in progress \(pid {proc.pid} since "):
            with account_lock(tmp_path, "alice@example.org"):
                pytest.fail("got a lock another process holds")


def test_lock_held_exits_with_code_5(tmp_path: Path) -> None:
    with holder(tmp_path, "work"):
        with pytest.raises(LockHeld) as caught:
            with account_lock(tmp_path, "work"):
                pass
    assert caught.value.exit_code == 5


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    with holder(tmp_path, "work") as proc:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        with account_lock(tmp_path, "work"):
            assert f"pid {os.getpid()} since" in lock_path(tmp_path, "work").read_text()


def test_other_accounts_are_not_blocked(tmp_path: Path) -> None:
    with holder(tmp_path, "work"):
        with account_lock(tmp_path, "home"):
            pass


def test_the_lock_is_released_when_the_block_ends(tmp_path: Path) -> None:
    with account_lock(tmp_path, "work"):
        pass
    with account_lock(tmp_path, "work"):
        pass


def test_account_names_never_escape_the_lock_directory(tmp_path: Path) -> None:
    path = lock_path(tmp_path, "../../etc/passwd")
    assert path.parent == tmp_path / "locks"
    assert lock_path(tmp_path, "a/b") != lock_path(tmp_path, "a_b")


# ---------------------------------------------------------------- one run per mailbox, one state file per mailbox

MAILBOX_HOLDER = """
import sys
from pathlib import Path
from mailrules.lock import mailbox_lock
with mailbox_lock(sys.argv[1], Path(sys.argv[2])):
    print("locked", flush=True)
    sys.stdin.read()
"""
MAILBOX = "imap://alice@imap.example.org:993"


@pytest.fixture
def locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "locks"
    monkeypatch.setenv(LOCK_DIR_ENV, str(directory))
    return directory


@contextmanager
def mailbox_holder(identity: str, state: Path) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", MAILBOX_HOLDER, identity, str(state)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_a_run_with_another_state_file_is_refused_while_the_first_runs(locks: Path, tmp_path: Path) -> None:
    with mailbox_holder(MAILBOX, tmp_path / "cron" / "state.sqlite3") as proc:
        with pytest.raises(LockHeld, match=rf"mailbox {MAILBOX} is in progress \(pid {proc.pid} since .*cron") as caught:
            with mailbox_lock(MAILBOX, tmp_path / "shell" / "state.sqlite3"):
                pytest.fail("got a lock another process holds")
    assert caught.value.exit_code == 5


def test_a_second_state_file_for_a_mailbox_is_refused_afterwards_too(locks: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    first.touch()
    with mailbox_lock(MAILBOX, first) as note:
        assert note is None
    with pytest.raises(StateStoreError) as caught:
        with mailbox_lock(MAILBOX, second):
            pytest.fail("a second state file got the mailbox")
    message = str(caught.value)
    assert f"kept by the state file {first}" in message and f"--state {first}" in message
    assert f"move {first} there" in message and "delete" not in message
    assert caught.value.exit_code == 6
    with mailbox_lock(MAILBOX, first):  # the keeper itself still runs
        pass


def test_a_state_file_moved_away_hands_the_mailbox_to_the_new_one(locks: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    first.touch()
    with mailbox_lock(MAILBOX, first):
        pass
    first.rename(second)
    with mailbox_lock(MAILBOX, second) as note:
        assert note is not None and f"{first}, which no longer exists" in note
    with mailbox_lock(MAILBOX, second) as note:
        assert note is None


def test_other_mailboxes_and_relative_paths(locks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "s.sqlite3"
    state.touch()
    with mailbox_lock(MAILBOX, state):
        with mailbox_lock("imap://bob@imap.example.org:993", tmp_path / "other.sqlite3"):
            pass
    monkeypatch.chdir(tmp_path)
    with mailbox_lock(MAILBOX, Path("s.sqlite3")):  # the same file, named relatively
        pass


def test_the_lock_place_ignores_the_state_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(LOCK_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "one"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    first = lock_dir()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "two"))
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert lock_dir() == first == Path(f"/tmp/mailrules-{os.getuid()}")


def test_lock_files_are_private_and_name_nobody(locks: Path, tmp_path: Path) -> None:
    with mailbox_lock(MAILBOX, tmp_path / "s.sqlite3"):
        pass
    assert locks.stat().st_mode & 0o777 == 0o700
    assert all("alice" not in path.name for path in locks.iterdir())


def test_a_lock_directory_others_can_write_is_refused(locks: Path, tmp_path: Path) -> None:
    locks.mkdir()
    locks.chmod(0o777)
    with pytest.raises(StateStoreError, match="not a private directory"):
        with mailbox_lock(MAILBOX, tmp_path / "s.sqlite3"):
            pass


def test_identities() -> None:
    assert imap_identity("Mail.Example.ORG.", 143, "Alice") == "imap://Alice@mail.example.org:143"
    assert imap_identity("h", 143, "a") != imap_identity("h", 993, "a")


def test_a_maildir_and_a_symlink_to_it_are_one_mailbox(tmp_path: Path) -> None:
    (tmp_path / "Maildir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "Maildir")
    assert maildir_identity(tmp_path / "link") == maildir_identity(tmp_path / "Maildir")
