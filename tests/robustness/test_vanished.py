"""Another client expunges while a run transfers; a dying server delivers copies late.

The run is held by the fault proxy just before its first ``UID MOVE`` (or ``UID COPY``)
while another IMAP client expunges some of the messages it is about to transfer.  The
run's session has not been told yet, so Dovecot refuses the whole command with
``[EXPUNGEISSUED]``; the run must transfer the rest, say how many had vanished, and exit 0.

A reconciled transfer is checked again by the next run: a copy that shows up in the
destination afterwards (as when a killed server indexes a file it had linked there) is
reported, left in place, and the run exits 1.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.robustness.harness import PASSWORD_ENV, CliResult, Workspace, run_cli, workspace
from tests.robustness.mailbox_state import read_state
from tests.support.dovecot import Dovecot, User
from tests.support.faultproxy import Command, FaultProxy, Hold, named

NOW = "2026-11-20T10:00:00Z"
RUN_TIMEOUT = 60.0

RULES = """\
version: 1
defaults:
  folders: [INBOX]
rules:
  - name: reports
    when: {subject: report}
    then: [{copy: Copies}, {move: Reports}]
"""
REPORTS, OTHERS = 8, 3
VANISHING = (1, 4)  # which reports the other client expunges


def message(message_id: str, subject: str) -> bytes:
    return (f"From: someone@example.net\r\nTo: u@example.com\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n"
            f"Date: Thu, 19 Nov 2026 10:00:00 +0000\r\n\r\nbody of {message_id}\r\n").encode()


def where(server: Dovecot, user: User) -> dict[str, list[str]]:
    return {folder: sorted(mid.strip("<>") for mid, _flags in entries.elements())
            for folder, entries in read_state(server, user).entries().items()}


def expunge(server: Dovecot, user: User, message_ids: list[str]) -> None:
    with server.client(user) as imap:
        imap.select_folder("INBOX")
        uids = [uid for mid in message_ids for uid in imap.search(["HEADER", "Message-ID", mid])]
        assert len(uids) == len(message_ids)
        imap.add_flags(uids, [b"\\Deleted"])
        imap.uid_expunge(uids)


def run_with_expunge_before(server: Dovecot, user: User, ws: Workspace, stop_at: Callable[[Command], bool],
                            gone: list[str]) -> CliResult:
    """Run, holding the first command ``stop_at`` accepts until another client expunged ``gone``."""
    hold = Hold(stop_at)
    with FaultProxy(server.host, server.port, before_command=hold) as proxy:
        result: list[CliResult] = []
        thread = threading.Thread(target=lambda: result.append(run_cli(ws.point_at(proxy.host, proxy.port, user)
                                                                       .run_args("--now", NOW))), daemon=True)
        thread.start()
        try:
            assert hold.reached.wait(RUN_TIMEOUT), f"the run never got there: {proxy.command_names()}"
            expunge(server, user, gone)
        finally:
            hold.release()
            thread.join(RUN_TIMEOUT)
    assert result, "the run did not finish"
    return result[0]


GONE = [f"<report-{number}@x>" for number in VANISHING]


def reports(skip: tuple[int, ...] = ()) -> list[str]:
    return sorted(f"report-{number}" for number in range(REPORTS) if number not in skip)


def keeps() -> list[str]:
    return sorted(f"keep-{number}" for number in range(OTHERS))


def seed_ids(server: Dovecot, user: User) -> None:
    for number in range(REPORTS):
        server.deliver(user, message(f"report-{number}@x", f"report {number}"))
    for number in range(OTHERS):
        server.deliver(user, message(f"keep-{number}@x", f"hello {number}"))


@pytest.mark.parametrize("verb", ["UID COPY", "UID MOVE"])
def test_messages_expunged_by_another_client_mid_run_are_reported_and_the_rest_transferred(
        dovecot: Dovecot, fresh_user: User, tmp_path: Path, verb: str) -> None:
    seed_ids(dovecot, fresh_user)
    ws = workspace(tmp_path, RULES)
    result = run_with_expunge_before(dovecot, fresh_user, ws, named(verb), GONE)
    assert result.code == 0, result.output
    assert "Traceback" not in result.output
    assert re.search(r"another client expunged messages during the (copy|move) to (Copies|Reports): reconciled; "
                     r"\d+ message\(s\) were already there, \d+ sent again, 2 had been expunged by another client",
                     result.stdout), result.stdout
    left = sorted(f"{mid}@x" for mid in reports(VANISHING))
    assert where(dovecot, fresh_user) == {
        "INBOX": sorted(f"{mid}@x" for mid in keeps()),
        "Copies": sorted(f"{mid}@x" for mid in reports()) if verb == "UID MOVE" else left,
        "Reports": left,
    }
    again = run_cli(ws.point_at(dovecot.host, dovecot.port, fresh_user).run_args("--now", NOW))
    assert again.code == 0 and "Done: nothing changed." in again.stdout, again.output


def test_messages_expunged_mid_move_on_a_server_without_move(dovecot_factory, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    server = dovecot_factory(without=("MOVE",))
    user = server.add_user()
    monkeypatch.setenv(PASSWORD_ENV, user.password)
    seed_ids(server, user)
    ws = workspace(tmp_path, RULES)
    first_copy = {"seen": 0}

    def second_copy(command: Command) -> bool:  # the COPY half of the move, after the copy action's COPY
        if command.name != "UID COPY":
            return False
        first_copy["seen"] += 1
        return first_copy["seen"] == 2

    result = run_with_expunge_before(server, user, ws, second_copy, GONE)
    assert result.code == 0, result.output
    assert "2 had been expunged by another client" in result.stdout
    left = sorted(f"{mid}@x" for mid in reports(VANISHING))
    assert where(server, user) == {"INBOX": sorted(f"{mid}@x" for mid in keeps()),
                                   "Copies": sorted(f"{mid}@x" for mid in reports()), "Reports": left}


def test_a_copy_that_surfaces_after_reconciling_is_reported_and_left_in_place(
        dovecot: Dovecot, fresh_user: User, tmp_path: Path) -> None:
    seed_ids(dovecot, fresh_user)
    ws = workspace(tmp_path, RULES)
    first = run_with_expunge_before(dovecot, fresh_user, ws, named("UID MOVE"), GONE)
    assert first.code == 0, first.output
    # What a killed server does when it indexes a file it had linked before dying: a
    # second copy of a moved message appears in the destination after the reconciliation.
    with dovecot.client(fresh_user) as imap:
        imap.select_folder("Reports", readonly=True)
        [uid] = imap.search(["HEADER", "Message-ID", "<report-0@x>"])
        arrived = imap.fetch([uid], ["INTERNALDATE"])[uid][b"INTERNALDATE"]
    dovecot.deliver(fresh_user, message("report-0@x", "report 0"), folder="Reports", internaldate=arrived)
    ws.point_at(dovecot.host, dovecot.port, fresh_user)
    second = run_cli(ws.run_args("--now", NOW))
    assert second.code == 1, second.output
    assert re.search(r"warning: Reports: 1 message\(s\) \(UIDs \d+\) are second copies that the server delivered "
                     r"late.*left in place", second.output), second.output
    assert where(dovecot, fresh_user)["Reports"].count("report-0@x") == 2  # never expunged by us
    history = run_cli(["history", "--state", str(ws.state)])
    assert "warning" in history.stdout and "second copies" in history.stdout, history.output
    third = run_cli(ws.run_args("--now", NOW))  # reported once, not on every run
    assert third.code == 0 and "warning" not in third.output, third.output
