"""The README's sample, as a user walks it: ``plan`` then ``run`` on the bundled sample Maildir.

The plan must say up front what this mailbox and account can't do (no SMTP: the reply and
the redirects are skipped, with the reason) and ``run`` must do exactly what it showed:
the keywords land in the Maildir the way Dovecot keeps them, and nothing fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailrules.backends.base import FetchNeeds
from mailrules.backends.maildir import MaildirMailbox
from mailrules.query import EVERYTHING
from tests.support.cli import run_cli

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-11-20T10:00:00Z"
NO_SMTP = "no smtp configured for account maildir:"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A copy of the example rules and a freshly generated sample Maildir, laid out as in the checkout."""
    shutil.copy(REPO / "rules.example.yaml", tmp_path / "rules.example.yaml")
    shutil.copytree(REPO / "examples" / "team", tmp_path / "examples" / "team")
    shutil.copytree(REPO / "examples" / "templates", tmp_path / "examples" / "templates")
    subprocess.run([sys.executable, str(REPO / "examples" / "make_sample_maildir.py"),
                    str(tmp_path / "examples" / "Maildir")], check=True, capture_output=True)
    return tmp_path


def _mailrules(sample: Path, *args: str):  # type: ignore[no-untyped-def]
    return run_cli([args[0], str(sample / "rules.example.yaml"), "--maildir", str(sample / "examples" / "Maildir"),
                    "--state", str(sample / "state.sqlite3"), "--now", NOW, *args[1:]])


def _operations(output: str) -> list[str]:
    """The INBOX section of a rendered plan, without its UIDVALIDITY header line."""
    section = output.split("\nINBOX (UIDVALIDITY", 1)[1].split("\n\n", 1)[0]
    return section.splitlines()[1:]


def _flags_by_subject(root: Path, folder: str) -> dict[str, frozenset[str]]:
    box = MaildirMailbox(root)
    box.open_folder(folder, readonly=True)
    needs = FetchNeeds(headers=frozenset({"subject"}))
    return {message.subject: message.flags for _, message in box.fetch(box.search(EVERYTHING), needs)}


def test_plan_says_what_the_account_cannot_send_and_run_does_exactly_the_plan(sample: Path) -> None:
    plan = _mailrules(sample, "plan")
    assert plan.code == 0, plan.output
    assert re.search(r"skip reply to erin@customer.example for UID \d+ \(rule support-ack\): "
                     + re.escape(NO_SMTP), plan.stdout)
    assert "Subject: Auto: Printer driver crashes on start" in plan.stdout  # still shown for review
    assert len(re.findall(r"skip redirect for UID \d+ \(rule invoices\): the account has no address", plan.stdout)) == 2
    assert "flag +$CI" in plan.stdout and "flag +$Invoice \\Flagged" in plan.stdout

    run = _mailrules(sample, "run")
    assert run.code == 0, run.output
    assert "failed:" not in run.output and "error" not in run.stderr
    assert _operations(run.stdout) == _operations(plan.stdout)


def test_run_stores_the_keywords_the_plan_showed_as_dovecot_does(sample: Path) -> None:
    assert _mailrules(sample, "run").code == 0
    root = sample / "examples" / "Maildir"
    inbox = _flags_by_subject(root, "INBOX")
    assert inbox["Sunday dinner"] == {"$Family"}
    assert inbox["[PAGE] db-1 disk 95% full"] == {"$OnCall", "\\Flagged"}
    assert set(_flags_by_subject(root, "Team/CI").values()) == {frozenset({"$CI", "\\Seen"})}
    assert set(_flags_by_subject(root, "Finance/Invoices").values()) == {frozenset({"$Invoice", "\\Flagged"})}
    # The reply was skipped, so the original is not marked answered; it was filed as planned.
    assert _flags_by_subject(root, "Support") == {"Printer driver crashes on start": frozenset({"$Ticket"})}
    names = dict(line.split(" ", 1) for line in (root / "dovecot-keywords").read_text().splitlines())
    assert sorted(names.values()) == ["$CI", "$Family", "$Invoice", "$OnCall", "$Ticket"]
    assert set(names) <= {str(index) for index in range(26)}


def test_a_second_run_on_the_sample_copies_nothing_again(sample: Path) -> None:
    assert _mailrules(sample, "run").code == 0
    again = _mailrules(sample, "plan")
    assert "copy to Finance/Invoices" not in again.stdout
    assert "Nothing to do." in again.stdout, again.stdout
    assert _mailrules(sample, "run").code == 0
    invoices = sample / "examples" / "Maildir" / ".Finance.Invoices" / "cur"
    assert len(list(invoices.iterdir())) == 2
