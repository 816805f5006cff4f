"""One run per account: a second process gets LockHeld at once; a dead holder frees the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mailrules.errors import LockHeld
from mailrules.lock import account_lock, lock_path

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
