"""Other mail clients keep working while mailrules runs.

The run is stopped at a chosen command by the fault proxy (after planning, before the
first change; or just before it expunges); meanwhile another IMAP client appends, flags
\\Deleted, expunges, renames or recreates folders.  mailrules must only ever act on the
messages it planned for, expunge only what it flagged itself, and refuse to touch a
folder whose UIDVALIDITY changed.  A second run on the same account waits its turn.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.robustness.harness import PASSWORD_ENV, CliResult, Workspace, run_cli, workspace
from tests.robustness.mailbox_state import read_state
from tests.support.dovecot import Dovecot, User
from tests.support.faultproxy import Command, FaultProxy, Hold, named

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-11-20T10:00:00Z"
RUN_TIMEOUT = 60.0

RULES = """\
version: 1
defaults:
  folders: [INBOX, Work]
rules:
  - name: spam
    when: {header: {name: X-Spam-Flag, is: "YES"}}
    then: [delete]
  - name: reports
    when: {subject: report}
    then: [{flag: seen}, {move: Reports}]
"""


def message(message_id: str, subject: str, *, spam: bool = False) -> bytes:
    spam_flag = "X-Spam-Flag: YES\r\n" if spam else ""
    return (f"From: someone@example.net\r\nTo: u@example.com\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n"
            f"Date: Thu, 19 Nov 2026 10:00:00 +0000\r\n{spam_flag}\r\nbody of {message_id}\r\n").encode()


def seed(server: Dovecot, user: User) -> None:
    for number in range(3):
        server.deliver(user, message(f"spam-{number}", f"offer {number}", spam=True))
        server.deliver(user, message(f"report-{number}", f"report {number}"))
        server.deliver(user, message(f"keep-{number}", f"hello {number}"))
        server.deliver(user, message(f"work-report-{number}", f"report w{number}"), folder="Work")
        server.deliver(user, message(f"work-keep-{number}", f"task {number}"), folder="Work")


def where(server: Dovecot, user: User) -> dict[str, list[str]]:
    """Folder -> sorted Message-IDs (without <>), leaving out empty folders."""
    return {folder: sorted(mid.strip("<>") for mid, _flags in entries.elements())
            for folder, entries in read_state(server, user).entries().items()}


def flags_of(server: Dovecot, user: User, folder: str, message_id: str) -> set[str]:
    entries = read_state(server, user).entries()[folder]
    return {flag for (mid, flags) in entries for flag in flags if mid == f"<{message_id}>"}


@pytest.fixture
def account(fresh_user: User, dovecot: Dovecot, tmp_path: Path) -> tuple[User, Workspace]:
    seed(dovecot, fresh_user)
    return fresh_user, workspace(tmp_path, RULES)


@dataclass
class HeldRun:
    """A ``mailrules run`` in a thread of this process, stopped at a command until released."""

    hold: Hold
    proxy: FaultProxy
    thread: threading.Thread
    result: list[CliResult]

    def finish(self) -> CliResult:
        self.hold.release()
        self.thread.join(RUN_TIMEOUT)
        assert not self.thread.is_alive(), "the run did not finish"
        self.proxy.stop()
        return self.result[0]


def start_held_run(server: Dovecot, user: User, ws: Workspace, stop_at: Callable[[Command], bool]) -> HeldRun:
    hold = Hold(stop_at)
    proxy = FaultProxy(server.host, server.port, before_command=hold).start()
    args = ws.point_at(proxy.host, proxy.port, user).run_args("--now", NOW)
    result: list[CliResult] = []
    thread = threading.Thread(target=lambda: result.append(run_cli(args)), daemon=True)
    thread.start()
    assert hold.reached.wait(RUN_TIMEOUT), f"the run never sent the command to stop at; it sent {proxy.command_names()}"
    return HeldRun(hold, proxy, thread, result)


def uid_of(imap: IMAPClient, message_id: str) -> int:
    uids = imap.search(["HEADER", "Message-ID", message_id])
    assert len(uids) == 1, f"{message_id}: {uids}"
    return int(uids[0])


def expunging(command: Command) -> bool:
    return command.name in ("UID EXPUNGE", "EXPUNGE", "CLOSE")


def assert_clean_exit(result: CliResult, code: int = 0) -> None:
    assert result.code == code, result.output[-2000:]
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- expunging only its own deletions


def test_only_the_messages_it_flagged_are_expunged(dovecot: Dovecot, account: tuple[User, Workspace]) -> None:
    user, ws = account
    with dovecot.client(user) as imap:  # flagged \Deleted by someone else before the run
        imap.select_folder("INBOX")
        imap.add_flags([uid_of(imap, "keep-1")], ["\\Deleted"])
    run = start_held_run(dovecot, user, ws, expunging)
    with dovecot.client(user) as imap:  # ... and while the run is about to expunge
        imap.select_folder("INBOX")
        imap.add_flags([uid_of(imap, "keep-2")], ["\\Deleted"])
    assert_clean_exit(run.finish())
    assert run.hold.held is not None and run.hold.held.name == "UID EXPUNGE"
    assert not {"EXPUNGE", "CLOSE"} & set(run.proxy.command_names())
    inbox = where(dovecot, user)["INBOX"]
    assert inbox == ["keep-0", "keep-1", "keep-2"]
    assert "\\Deleted" in flags_of(dovecot, user, "INBOX", "keep-2")


def test_without_uidplus_other_clients_deletions_still_survive(
        dovecot_factory: Callable[..., Dovecot], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = dovecot_factory(without=("UIDPLUS",))
    user = server.add_user()
    monkeypatch.setenv(PASSWORD_ENV, user.password)
    seed(server, user)
    with server.client(user) as imap:
        imap.select_folder("INBOX")
        imap.add_flags([uid_of(imap, "keep-1")], ["\\Deleted"])
    with FaultProxy(server.host, server.port) as proxy:
        result = run_cli(workspace(tmp_path, RULES).point_at(proxy.host, proxy.port, user).run_args("--now", NOW))
    assert result.code in (0, 3) and "Traceback" not in result.output, result.output
    assert not {"EXPUNGE", "CLOSE"} & set(proxy.command_names())
    assert "keep-1" in where(server, user)["INBOX"]


# ---------------------------------------------------------------- mail that changes under a running plan


def test_mail_arriving_during_a_run_waits_for_the_next_run(dovecot: Dovecot, account: tuple[User, Workspace]) -> None:
    user, ws = account
    run = start_held_run(dovecot, user, ws, named("SELECT"))
    dovecot.append(user, message("late-report", "report late"))
    dovecot.append(user, message("late-spam", "offer late", spam=True))
    assert_clean_exit(run.finish())
    after_first = where(dovecot, user)
    assert after_first["INBOX"] == ["keep-0", "keep-1", "keep-2", "late-report", "late-spam"]
    assert after_first["Reports"] == sorted([f"report-{n}" for n in range(3)] + [f"work-report-{n}" for n in range(3)])
    assert_clean_exit(run_cli(ws.point_at(dovecot.host, dovecot.port, user).run_args("--now", NOW)))
    after_second = where(dovecot, user)
    assert after_second["INBOX"] == ["keep-0", "keep-1", "keep-2"]
    assert "late-report" in after_second["Reports"]


def test_messages_expunged_by_another_client_are_not_replaced_by_others(
        dovecot: Dovecot, account: tuple[User, Workspace]) -> None:
    user, ws = account
    run = start_held_run(dovecot, user, ws, named("SELECT"))
    with dovecot.client(user) as imap:
        imap.select_folder("INBOX")
        gone = [uid_of(imap, "report-1"), uid_of(imap, "spam-1"), uid_of(imap, "keep-1")]
        imap.add_flags(gone, ["\\Deleted"])
        imap.uid_expunge(gone)
        imap.append("INBOX", message("newcomer", "hello newcomer"))
    assert_clean_exit(run.finish())
    after = where(dovecot, user)
    assert after["INBOX"] == ["keep-0", "keep-2", "newcomer"]
    assert after["Reports"] == sorted(["report-0", "report-2"] + [f"work-report-{n}" for n in range(3)])
    assert flags_of(dovecot, user, "INBOX", "newcomer") == set()
    assert flags_of(dovecot, user, "INBOX", "keep-0") == set()


def test_a_source_folder_renamed_during_the_run_is_left_alone(dovecot: Dovecot, account: tuple[User, Workspace]) -> None:
    user, ws = account
    run = start_held_run(dovecot, user, ws, named("SELECT"))
    with dovecot.client(user) as imap:
        imap.rename_folder("Work", "Work-Renamed")
    result = run.finish()
    assert result.code in (0, 3) and "Traceback" not in result.output, result.output
    if result.code == 3:
        assert "Work" in result.stderr
    after = where(dovecot, user)
    assert after["Work-Renamed"] == sorted([f"work-keep-{n}" for n in range(3)] + [f"work-report-{n}" for n in range(3)])
    assert all(flags_of(dovecot, user, "Work-Renamed", f"work-report-{n}") == set() for n in range(3))


def test_a_destination_renamed_during_the_run_loses_nothing(dovecot: Dovecot, account: tuple[User, Workspace]) -> None:
    user, ws = account
    run = start_held_run(dovecot, user, ws, named("SELECT"))
    with dovecot.client(user) as imap:
        imap.rename_folder("Reports", "Reports-Old")
    result = run.finish()
    assert result.code in (0, 3) and "Traceback" not in result.output, result.output
    survivors = sorted(mid for folder in where(dovecot, user).values() for mid in folder if not mid.startswith("spam"))
    assert survivors == sorted(f"{kind}-{n}" for kind in ("report", "keep", "work-report", "work-keep") for n in range(3))
    assert_clean_exit(run_cli(ws.point_at(dovecot.host, dovecot.port, user).run_args("--now", NOW)))
    after = where(dovecot, user)
    reports = sorted(after.get("Reports", []) + after.get("Reports-Old", []))
    assert reports == sorted([f"report-{n}" for n in range(3)] + [f"work-report-{n}" for n in range(3)])
    assert after["INBOX"] == ["keep-0", "keep-1", "keep-2"]


def test_a_folder_recreated_between_plan_and_run_is_a_clear_abort(
        dovecot: Dovecot, account: tuple[User, Workspace]) -> None:
    user, ws = account
    with dovecot.client(user) as imap:
        before = imap.folder_status("Work", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    run = start_held_run(dovecot, user, ws, named("SELECT"))
    with dovecot.client(user) as imap:
        imap.delete_folder("Work")
        imap.create_folder("Work")
        for number in range(6):  # the planned UIDs now name these impostors
            imap.append("Work", message(f"impostor-{number}", f"report impostor {number}"))
        assert imap.folder_status("Work", [b"UIDVALIDITY"])[b"UIDVALIDITY"] != before
    result = run.finish()
    assert_clean_exit(result, 4)
    assert "UIDVALIDITY" in result.stderr
    assert where(dovecot, user)["Work"] == [f"impostor-{n}" for n in range(6)]
    assert all(flags_of(dovecot, user, "Work", f"impostor-{n}") == set() for n in range(6))


# ---------------------------------------------------------------- one run per account at a time


def run_in_child(args: list[str], password: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mailrules", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, PASSWORD_ENV: password})


def test_a_second_run_on_the_same_account_is_refused_while_the_first_runs(
        dovecot: Dovecot, account: tuple[User, Workspace], tmp_path: Path) -> None:
    user, ws = account
    hold = Hold(named("SELECT"))
    with FaultProxy(dovecot.host, dovecot.port, before_command=hold) as proxy:
        first = run_in_child(ws.point_at(proxy.host, proxy.port, user).run_args("--now", NOW), user.password)
        try:
            assert hold.reached.wait(RUN_TIMEOUT), "the first run never reached its first SELECT"
            direct = tmp_path / "direct.yaml"
            direct.write_text(Path(ws.accounts).read_text().replace(f"port: {proxy.port}", f"port: {dovecot.port}"))
            args = ws.run_args("--now", NOW)
            args[args.index("--accounts") + 1] = str(direct)
            second = run_cli(args)
        finally:
            hold.release()
            out, err = first.communicate(timeout=RUN_TIMEOUT)
    assert second.code == 5, second.output
    assert "another mailrules run" in second.stderr and "in progress" in second.stderr
    assert first.returncode == 0, err
    assert where(dovecot, user)["INBOX"] == ["keep-0", "keep-1", "keep-2"]
    assert_clean_exit(run_cli(args))  # the lock went with the first run
