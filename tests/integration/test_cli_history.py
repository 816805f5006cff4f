"""``mailrules history``: what each run did per rule and folder, one run's operations, and why it failed."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.dovecot import Dovecot, User, free_port
from tests.support.workspace import Workspace, make_message, run_cli, workspace

NOW = "2026-11-20T10:00:00Z"
RULES = """\
version: 1
rules:
  - name: github
    when: {from: {domain: github.com}}
    then: [{flag: seen}, {move: Notifications}]
  - name: purge
    when: {subject: old}
    then: [trash]
"""


def history(space: Workspace, *args: str) -> list[str] | dict:  # type: ignore[type-arg]
    result = run_cli(["history", *args, "--state", str(space.state)])
    assert result.code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else [line.strip() for line in result.stdout.splitlines()]


def seeded(tmp_path: Path, dovecot: Dovecot, user: User, rules: str = RULES) -> Workspace:
    for number in range(5):
        dovecot.deliver(user, make_message(f"PR #{number}", "GitHub <notifications@github.com>"))
    dovecot.deliver(user, make_message("old report"))
    return workspace(tmp_path, user, rules)


def test_history_says_what_each_run_did_per_rule_and_folder(tmp_path: Path, dovecot: Dovecot,
                                                            imap_user: User) -> None:
    space = seeded(tmp_path, dovecot, imap_user)
    assert space.run("--now", NOW).code == 0
    assert space.run("--now", NOW).code == 0
    lines = history(space)
    runs = [line for line in lines if line.startswith("#")]
    assert len(runs) == 2 and " ok " in runs[0] and "0 operation(s)" in runs[0]
    assert "rules: github 5, purge 1" in lines
    assert "INBOX: flag +\\Seen 5, move to Notifications 5, trash to Trash 1" in lines


def test_history_of_one_run_lists_its_operations(tmp_path: Path, dovecot: Dovecot, imap_user: User) -> None:
    space = seeded(tmp_path, dovecot, imap_user)
    assert space.run("--now", NOW).code == 0
    run_id = history(space, "--json")["runs"][0]["id"]  # type: ignore[call-overload]
    lines = history(space, str(run_id))
    assert lines[0] == f"Run #{run_id} of t (run): ok"
    operations = [line.split() for line in lines[lines.index("Operations:") + 1:]]
    assert [(words[0], words[1], words[-1]) for words in operations] == [
        ("done", "INBOX", "1:5"), ("done", "INBOX", "1:5"), ("done", "INBOX", "6")]
    assert history(space, f"#{run_id}") == lines


def test_history_says_why_a_failed_run_failed(tmp_path: Path, dovecot: Dovecot, imap_user: User) -> None:
    space = seeded(tmp_path, dovecot, imap_user, RULES.replace("move: Notifications", "move: Lists/github.com"))
    failed = space.run("--now", NOW)
    assert failed.code == 6, failed.output
    listing = history(space)
    assert " failed " in listing[0]
    assert any(line.strip().startswith("failed:") and "can't create this folder" in line and "(exit 6)" in line
               for line in listing)
    run = history(space, "1", "--json")
    assert (run["status"], run["exit_code"]) == ("failed", 6)  # type: ignore[index]
    assert "Character not allowed in mailbox name" in run["error"]  # type: ignore[index]
    assert run["rules"] == {"github": 5, "purge": 1}  # type: ignore[index]


def test_history_names_the_sends_that_failed(tmp_path: Path, dovecot: Dovecot, imap_user: User) -> None:
    dovecot.deliver(imap_user, make_message("Question", "Bob <bob@example.net>", to=f"{imap_user.username}@example.com"))
    smtp_down = f"    smtp: {{host: 127.0.0.1, port: {free_port()}, tls: none}}\n"  # nothing listens there
    space = workspace(tmp_path, imap_user, "version: 1\nrules:\n  - name: away\n    when: all\n"
                                           "    then: [{reply: {body: 'Away until Monday.'}}]\n", extra=smtp_down)
    result = space.run("--now", NOW)
    assert result.code == 1, result.output  # the SMTP server is down: the reply fails
    listing = history(space)
    assert " partial " in listing[0]
    assert any(line.startswith("failed: reply for UID 1 (rule away): can't connect to SMTP server")
               for line in listing)
    data = history(space, "--json")["runs"][0]  # type: ignore[call-overload]
    assert len(data["failures"]) == 1 and data["failures"][0].startswith("reply for UID 1 (rule away): ")
    one = history(space, str(data["id"]), "--json")
    assert [(op["kind"], op["status"]) for op in one["operations"]] == [("reply", "failed")]  # type: ignore[index]
    assert "can't connect to SMTP server" in one["operations"][0]["error"]  # type: ignore[index]


def test_history_json_keys_are_stable(tmp_path: Path, dovecot: Dovecot, imap_user: User) -> None:
    space = seeded(tmp_path, dovecot, imap_user)
    assert space.run("--now", NOW).code == 0
    listed = history(space, "--json")["runs"][0]  # type: ignore[call-overload]
    assert set(listed) == {"id", "account", "mode", "status", "started_at", "finished_at", "operation_count",
                           "rules", "folders", "error", "exit_code", "failures"}
    assert listed["folders"][0] == {"folder": "INBOX", "operation": "flag +\\Seen", "status": "done", "messages": 5}
    one = history(space, str(listed["id"]), "--json")
    assert set(one) == set(listed) | {"operations"}  # type: ignore[arg-type]
    assert set(one["operations"][0]) == {"id", "folder", "rule", "kind", "operation", "uids", "destination",  # type: ignore[index]
                                         "flags", "status", "error", "at"}


def test_history_of_a_run_that_does_not_exist_exits_2(tmp_path: Path) -> None:
    result = run_cli(["history", "42", "--state", str(tmp_path / "state.sqlite3")])
    assert result.code == 2
    assert "no run #42 in the journal" in result.stderr
    assert run_cli(["history", "latest", "--state", str(tmp_path / "state.sqlite3")]).code == 2
