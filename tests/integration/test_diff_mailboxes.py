"""``mailrules diff`` over real mailboxes: the bundled sample Maildir and a real Dovecot, left untouched."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.dovecot import Dovecot, User, strip_rawlog_timestamps
from tests.support.workspace import make_message, snapshot, workspace

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-11-20T10:00:00Z"


def _maildir_files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_a_realistic_change_to_the_example_rules_over_the_sample_maildir(tmp_path: Path) -> None:
    shutil.copy(REPO / "rules.example.yaml", tmp_path / "rules.example.yaml")
    shutil.copytree(REPO / "examples" / "team", tmp_path / "examples" / "team")
    shutil.copytree(REPO / "examples" / "templates", tmp_path / "examples" / "templates")
    maildir = tmp_path / "examples" / "Maildir"
    subprocess.run([sys.executable, str(REPO / "examples" / "make_sample_maildir.py"), str(maildir)],
                   check=True, capture_output=True)
    old = tmp_path / "rules.example.yaml"
    new = tmp_path / "rules.new.yaml"
    # GitHub security notices stay in the inbox, ahead of the rule that files the rest away.
    new.write_text(old.read_text().replace(
        "  - name: github\n",
        "  - name: github-security\n    when: {from: {domain: security.github.com}}\n    then: [{flag: flagged}, stop]\n"
        "\n  - name: github\n", 1))
    before = _maildir_files(maildir)
    result = run_cli(["diff", str(old), str(new), "--maildir", str(maildir), "--now", NOW])
    assert result.code == 1, result.output
    assert ("INBOX: Notifications/GitHub (rule github) → stays in INBOX +\\Flagged (rule github-security)"
            "  [1 message]") in result.stdout
    assert "noreply@security.github.com  '[GitHub] A new SSH key was added to your account'" in result.stdout
    assert result.stdout.splitlines()[0].startswith("1 message of ")
    assert _maildir_files(maildir) == before  # nothing renamed, not even a Seen flag in a file name
    same = run_cli(["diff", str(old), str(old), "--maildir", str(maildir), "--now", NOW])
    assert (same.code, same.stdout) == (0, "")


RULES = """\
version: 1
rules:
  - name: github
    when: {from: {domain: github.com}}
    then: [{flag: seen}, {move: Notifications/GitHub}]
  - name: newsletters
    when: {header: {name: Precedence, is: bulk}}
    then: [{move: Newsletters}]
  - name: big
    when: {body: {contains: unsubscribe}}
    then: [{flag: $Big}]
"""


def test_diff_over_dovecot_reads_once_and_changes_nothing(tmp_path: Path, dovecot: Dovecot, imap_user: User) -> None:
    deliveries = [
        make_message("[acme/app] PR #1", "GitHub <notifications@github.com>"),
        make_message("GitHub digest", "GitHub <noreply@github.com>", headers={"Precedence": "bulk"}),
        make_message("Weekly news", "News <news@letter.example>", body="to unsubscribe click\n",
                     headers={"Precedence": "bulk"}),
        make_message("Lunch?", "Bob <bob@example.net>"),
    ]
    for raw in deliveries:
        dovecot.deliver(imap_user, raw)
    dovecot.deliver(imap_user, make_message("Old digest", "GitHub <noreply@github.com>"), folder="Archive")
    space = workspace(tmp_path, imap_user, RULES)
    new = tmp_path / "new.yaml"
    # Bulk first now.
    new.write_text(RULES.replace("  - name: github\n", "  - name: early-bulk\n    when: {header: {name: Precedence, "
                                 "is: bulk}}\n    then: [{move: Newsletters}]\n  - name: github\n", 1))
    before = snapshot(dovecot, imap_user)
    dovecot.clear_rawlog(imap_user)
    result = run_cli(["diff", str(space.rules), str(new), "--accounts", str(space.accounts), "--account", "t",
                      "--json"])
    assert result.code == 1, result.output
    report = json.loads(result.stdout)
    assert report["changed"] == 2 and report["examined"] == len(deliveries)
    by_subject = {message["subject"]: group for group in report["groups"] for message in group["messages"]}
    assert set(by_subject) == {"GitHub digest", "Weekly news"}
    digest = by_subject["GitHub digest"]
    assert digest["old"]["folders"] == ["Notifications/GitHub"] and digest["old"]["flags_added"] == ["\\Seen"]
    assert digest["new"] == {"rules": ["early-bulk"], "folders": ["Newsletters"], "flags_added": [],
                             "flags_removed": [], "replies": [], "redirects": [], "deleted": False}
    # The body rule ran before (Weekly news got $Big); bulk now stops earlier.
    assert by_subject["Weekly news"]["old"]["rules"] == ["newsletters"]
    sent = b"".join(strip_rawlog_timestamps(path.read_bytes()) for path in sorted(imap_user.rawlog_dir.glob("*.in")))
    lines = [line.decode(errors="replace").upper() for line in sent.splitlines()]
    assert any(" EXAMINE " in line for line in lines) and not any(" SELECT " in line for line in lines), lines
    fetches = [line for line in lines if " FETCH " in line and "BODY" in line]
    assert len(fetches) == 1, fetches  # one read of INBOX's messages serves both rule sets
    assert "BODY.PEEK[]" in fetches[0] and "BODY[" not in fetches[0], fetches
    assert not any(" STORE " in line or " COPY " in line or " MOVE " in line for line in lines)
    assert snapshot(dovecot, imap_user) == before  # not a flag changed, not even \Seen
