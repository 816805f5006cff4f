"""One mailbox, one run at a time and one state file, whatever ``--state`` says.

A cron job and a shell with different state paths used to both run on one mailbox and
each repeat what the other had done.  The mailbox's lock lives apart from the state
file, and the state file that first ran on a mailbox keeps it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.robustness.harness import PASSWORD_ENV, Workspace, run_cli, workspace
from tests.robustness.mailbox_state import read_state
from tests.support.dovecot import Dovecot, User
from tests.support.faultproxy import FaultProxy, Hold, named

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-11-20T10:00:00Z"
TIMEOUT = 60.0

RULES = """\
version: 1
rules:
  - name: reports
    when: {subject: report}
    then: [{copy: Reports}, {flag: seen}]
"""


def report(number: int) -> bytes:
    return (f"From: a@example.net\r\nTo: u@example.com\r\nSubject: report {number}\r\n"
            f"Message-ID: <lock-{number}@example.net>\r\n\r\nbody {number}\r\n").encode()


def copies(server: Dovecot, user: User) -> list[str]:
    entries = read_state(server, user).entries().get("Reports")
    return sorted(mid for mid, _flags in entries.elements()) if entries else []


def two_workspaces(root: Path, host: str, port: int, user: User) -> tuple[Workspace, Workspace]:
    """The same account file twice, each with its own state file (a cron job and a shell)."""
    return (workspace(root / "cron", RULES).point_at(host, port, user),
            workspace(root / "shell", RULES).point_at(host, port, user))


def test_a_run_with_another_state_file_waits_for_the_running_one(
        dovecot: Dovecot, fresh_user: User, tmp_path: Path) -> None:
    dovecot.deliver(fresh_user, report(1))
    hold = Hold(named("SELECT"))
    with FaultProxy(dovecot.host, dovecot.port, before_command=hold) as proxy:
        cron, shell = two_workspaces(tmp_path, proxy.host, proxy.port, fresh_user)
        first = subprocess.Popen([sys.executable, "-m", "mailrules", *cron.run_args("--now", NOW)], cwd=REPO,
                                 text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env={**os.environ, PASSWORD_ENV: fresh_user.password})
        try:
            assert hold.reached.wait(TIMEOUT), "the first run never reached its SELECT"
            second = run_cli(shell.run_args("--now", NOW))
        finally:
            hold.release()
            _, err = first.communicate(timeout=TIMEOUT)
    assert second.code == 5, second.output
    assert f"another mailrules run on mailbox imap://{fresh_user.username}@" in second.stderr
    assert "in progress" in second.stderr and "Traceback" not in second.output
    assert first.returncode == 0, err
    assert copies(dovecot, fresh_user) == ["<lock-1@example.net>"]


def test_a_second_state_file_for_the_mailbox_is_refused_and_moving_the_first_resolves_it(
        dovecot: Dovecot, fresh_user: User, tmp_path: Path) -> None:
    cron, shell = two_workspaces(tmp_path, dovecot.host, dovecot.port, fresh_user)
    dovecot.deliver(fresh_user, report(1))
    assert run_cli(cron.run_args("--now", NOW)).code == 0
    dovecot.deliver(fresh_user, report(2))

    refused = run_cli(shell.run_args("--now", NOW))
    assert refused.code == 6, refused.output
    assert f"kept by the state file {cron.state}" in refused.stderr and "Traceback" not in refused.output
    assert copies(dovecot, fresh_user) == ["<lock-1@example.net>"]  # the refused run changed nothing

    cron.state.rename(shell.state)  # the resolution the message gives
    moved = run_cli(shell.run_args("--now", NOW))
    assert moved.code == 0, moved.output
    assert f"{cron.state}, which no longer exists" in moved.stderr
    assert copies(dovecot, fresh_user) == ["<lock-1@example.net>", "<lock-2@example.net>"]  # nothing copied twice
