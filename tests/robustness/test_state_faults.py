"""A state store that fails: full disk, read-only file system, a database someone else locked.

Each ends the run with one clear line naming the state file and what to do (exit 6),
changes nothing on the mailbox after the failure, keeps the journal, and a run after the
fault is fixed finishes the job without repeating anything.  The disks are small tmpfs
mounts of the test's own; where mounting isn't allowed the tests say so and skip.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailrules.errors import StateStoreError
from mailrules.state import State
from tests.robustness.harness import CliResult, Workspace, run_cli, workspace
from tests.robustness.mailbox_state import read_state
from tests.support.dovecot import Dovecot, User
from tests.support.faultproxy import FaultProxy, Hold, named

NOW = "2026-11-20T10:00:00Z"
TIMEOUT = 60.0

RULES = """\
version: 1
rules:
  - name: reports
    when: {subject: report}
    then: [{copy: Copies}, {move: Reports}]
"""


def report(number: int) -> bytes:
    return (f"From: a@example.net\r\nTo: u@example.com\r\nSubject: report {number}\r\n"
            f"Message-ID: <fault-{number}@example.net>\r\n\r\nbody {number}\r\n").encode()


def where(server: Dovecot, user: User) -> dict[str, list[str]]:
    return {folder: sorted(mid for mid, _flags in entries.elements())
            for folder, entries in read_state(server, user).entries().items()}


def mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} is not allowed here: {done.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB file system of this test's own."""
    point = tmp_path / "disk"
    point.mkdir()
    mount("-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(point))
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(disk: Path) -> Path:
    """Use up every block of ``disk``; removing the returned file frees them again."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    try:
        while True:
            os.write(fd, b"\0")
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def run_args(ws: Workspace, state: Path, host: str, port: int, user: User) -> list[str]:
    args = ws.point_at(host, port, user).run_args("--now", NOW)
    args[args.index("--state") + 1] = str(state)
    return args


def assert_store_error(result: CliResult, state: Path, *words: str) -> None:
    assert result.code == 6, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    assert f"state file {state}" in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    for bad_advice in ("delete", "remove it", "move it away", "start afresh"):
        assert bad_advice not in result.stderr, result.stderr


def test_a_disk_filling_up_during_a_run_stops_it_before_the_next_change(
        dovecot: Dovecot, fresh_user: User, tmp_path: Path, small_disk: Path) -> None:
    state = small_disk / "state" / "state.sqlite3"
    ws = workspace(tmp_path / "ws", RULES)
    dovecot.deliver(fresh_user, report(0))
    assert run_cli(run_args(ws, state, dovecot.host, dovecot.port, fresh_user)).code == 0
    for number in range(1, 4):
        dovecot.deliver(fresh_user, report(number))
    before = where(dovecot, fresh_user)

    # Stop the run at the SELECT that starts its changes, fill the disk, let it go on.
    hold = Hold(named("SELECT"))
    result: list[CliResult] = []
    with FaultProxy(dovecot.host, dovecot.port, before_command=hold) as proxy:
        thread = threading.Thread(target=lambda: result.append(
            run_cli(run_args(ws, state, proxy.host, proxy.port, fresh_user))), daemon=True)
        thread.start()
        assert hold.reached.wait(TIMEOUT), f"the run never selected a folder: {proxy.command_names()}"
        filler = fill(small_disk)
        hold.release()
        thread.join(TIMEOUT)
        sent = proxy.command_names()
    assert not thread.is_alive()
    assert_store_error(result[0], state, "full", "journal in it is kept")
    assert not {"UID COPY", "UID MOVE", "UID STORE", "UID EXPUNGE"} & set(sent), sent
    assert where(dovecot, fresh_user) == before
    assert state.exists()

    filler.unlink()
    resumed = run_cli(run_args(ws, state, dovecot.host, dovecot.port, fresh_user))
    assert resumed.code == 0, resumed.output
    reports = [f"<fault-{number}@example.net>" for number in range(4)]
    assert where(dovecot, fresh_user) == {"Copies": reports, "Reports": reports}
    with State(state) as db:
        runs = [(run.status, run.finished_at is not None) for run in db.recent_runs()]
    assert runs == [("ok", True), ("running", False), ("ok", True)]  # its end could not be written: unfinished


def test_a_full_disk_at_start_up_is_a_clear_error(dovecot: Dovecot, fresh_user: User, tmp_path: Path,
                                                  small_disk: Path) -> None:
    state = small_disk / "state" / "state.sqlite3"
    ws = workspace(tmp_path / "ws", RULES)
    dovecot.deliver(fresh_user, report(0))
    assert run_cli(run_args(ws, state, dovecot.host, dovecot.port, fresh_user)).code == 0
    with sqlite3.connect(state) as db:  # an empty write-ahead log: the next write needs new blocks
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    dovecot.deliver(fresh_user, report(1))
    filler = fill(small_disk)
    assert_store_error(run_cli(run_args(ws, state, dovecot.host, dovecot.port, fresh_user)), state, "full")
    assert where(dovecot, fresh_user)["INBOX"] == ["<fault-1@example.net>"]
    filler.unlink()
    assert run_cli(run_args(ws, state, dovecot.host, dovecot.port, fresh_user)).code == 0
    assert where(dovecot, fresh_user)["Reports"] == ["<fault-0@example.net>", "<fault-1@example.net>"]


def test_a_read_only_state_directory_is_refused_without_advice_to_drop_the_journal(
        dovecot: Dovecot, fresh_user: User, tmp_path: Path, small_disk: Path) -> None:
    state = small_disk / "state" / "state.sqlite3"
    ws = workspace(tmp_path / "ws", RULES)
    dovecot.deliver(fresh_user, report(0))
    assert run_cli(run_args(ws, state, dovecot.host, dovecot.port, fresh_user)).code == 0
    dovecot.deliver(fresh_user, report(1))
    mount("-o", "remount,ro", str(small_disk))
    result = run_cli(run_args(ws, state, dovecot.host, dovecot.port, fresh_user))
    assert_store_error(result, state, "read-only", "writable")
    assert where(dovecot, fresh_user)["INBOX"] == ["<fault-1@example.net>"]
    mount("-o", "remount,rw", str(small_disk))
    assert run_cli(run_args(ws, state, dovecot.host, dovecot.port, fresh_user)).code == 0
    assert where(dovecot, fresh_user)["Reports"] == ["<fault-0@example.net>", "<fault-1@example.net>"]


def test_a_database_another_program_keeps_locked(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    State(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with State(path, timeout=0.2) as state, pytest.raises(StateStoreError) as caught:
            state.begin_run("t", "run")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert f"state file {path}" in str(caught.value) and "locked" in str(caught.value)
    assert caught.value.exit_code == 6
    with State(path) as state:  # the failed write left no transaction behind
        state.begin_run("t", "run")
        assert [run.status for run in state.recent_runs()] == ["running"]


def test_a_state_directory_that_cannot_be_created(tmp_path: Path, small_disk: Path) -> None:
    mount("-o", "remount,ro", str(small_disk))
    try:
        with pytest.raises(StateStoreError, match="read-only file system"):
            State(small_disk / "new" / "state.sqlite3")
    finally:
        mount("-o", "remount,rw", str(small_disk))
