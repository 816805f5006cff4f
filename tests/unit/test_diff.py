"""``mailrules diff`` over a folder of fixtures: only what a rule change does differently, and why."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import CliResult, run_cli
from tests.support.workspace import make_message

BASE = """\
version: 1
rules:
  - name: github
    when: {from: {domain: github.com}}
    then: [{move: Notifications}]
  - name: bulk
    when: {header: {name: Precedence, is: bulk}}
    then: [{move: Newsletters}]
  - name: star-invoices
    when: {subject: {contains: invoice}}
    then: [{flag: flagged}]
"""


@pytest.fixture
def fixtures(tmp_path: Path) -> Path:
    folder = tmp_path / "mail"
    (folder / "Work").mkdir(parents=True)
    messages = {
        "pr.eml": make_message("[acme] PR #1", "GitHub <notifications@github.com>"),
        "digest.eml": make_message("GitHub digest", "GitHub <noreply@github.com>", headers={"Precedence": "bulk"}),
        "news.eml": make_message("Weekly news", "News <news@letter.example>", headers={"Precedence": "bulk"}),
        "invoice.eml": make_message("Your invoice | 42", "Billing <billing@shop.example>",
                                    headers={"Precedence": "bulk"}),
        "lunch.eml": make_message("Lunch?", "Bob <bob@example.net>"),
        "Work/report.eml": make_message("Quarterly invoice report", "Carol <carol@corp.example>"),
    }
    for name, raw in messages.items():
        (folder / name).write_bytes(raw)
    return folder


def diff(tmp_path: Path, old: str, new: str, fixtures: Path, *extra: str) -> CliResult:
    (tmp_path / "old.yaml").write_text(old)
    (tmp_path / "new.yaml").write_text(new)
    return run_cli(["diff", str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml"), "--fixtures", str(fixtures),
                    *extra])


def test_identical_rules_exit_0_and_print_nothing(tmp_path: Path, fixtures: Path) -> None:
    result = diff(tmp_path, BASE, BASE, fixtures)
    assert (result.code, result.stdout, result.stderr) == (0, "", "")
    assert diff(tmp_path, BASE, BASE, fixtures, "--json").stdout == ""


def test_a_changed_condition_shows_only_the_messages_it_moves(tmp_path: Path, fixtures: Path) -> None:
    result = diff(tmp_path, BASE, BASE.replace("domain: github.com", "address: notifications@github.com"), fixtures)
    assert result.code == 1, result.output
    assert result.stdout.splitlines()[0] == "1 message of 6 change:"
    assert ("INBOX: Notifications (rule github) → Newsletters (rule bulk)  [1 message]"
            in result.stdout)
    assert "'GitHub digest'" in result.stdout and "noreply@github.com" in result.stdout
    assert "PR #1" not in result.stdout and "Lunch" not in result.stdout


def test_a_reordered_rule(tmp_path: Path, fixtures: Path) -> None:
    lines = BASE.splitlines(keepends=True)
    reordered = "".join(lines[:2] + lines[5:8] + lines[2:5] + lines[8:])
    result = diff(tmp_path, BASE, reordered, fixtures, "--json")
    assert result.code == 1, result.output
    report = json.loads(result.stdout)
    assert (report["examined"], report["changed"]) == (6, 1)
    [group] = report["groups"]
    assert group["old"]["rules"] == ["github"] and group["old"]["folders"] == ["Notifications"]
    assert group["new"]["rules"] == ["bulk"] and group["new"]["folders"] == ["Newsletters"]
    assert [message["subject"] for message in group["messages"]] == ["GitHub digest"]
    assert group["messages"][0]["from"] == "noreply@github.com"
    assert group["messages"][0]["date"] == "2026-11-01 12:00"


def test_an_added_stop_groups_by_rule_and_destination_with_counts(tmp_path: Path, fixtures: Path) -> None:
    new = BASE.replace("then: [{move: Newsletters}]", "then: [{move: Newsletters}]\n") + """\
  - name: nothing-after-here
    when: {all: []}
    then: [stop]
"""
    new = new.replace("rules:\n", "rules:\n  - name: bulk-stops\n    when: {header: {name: Precedence, is: bulk}}\n"
                      "    then: [{flag: seen}, stop]\n", 1)
    result = diff(tmp_path, BASE, new, fixtures)
    assert result.code == 1, result.output
    text = result.stdout
    # All three bulk messages stop in INBOX now, whichever rule filed them before.
    assert "INBOX: Notifications (rule github) → stays in INBOX +\\Seen (rule bulk-stops)  [1 message]" in text
    assert "INBOX: Newsletters (rule bulk) → stays in INBOX +\\Seen (rule bulk-stops)  [2 messages]" in text
    # A message no rule touched before is matched by the new catch-all stop, which changes nothing: shown too.
    assert "INBOX: stays in INBOX (no rule) → stays in INBOX (rule nothing-after-here)  [1 message]" in text
    assert "Work: stays in Work" not in text  # the rules read INBOX only
    assert text.splitlines()[0] == "4 messages of 6 change:"


def test_folders_of_fixtures_are_subdirectories(tmp_path: Path, fixtures: Path) -> None:
    new = BASE.replace("    then: [{flag: flagged}]", "    folders: ['*']\n    then: [{flag: flagged}]")
    result = diff(tmp_path, BASE, new, fixtures)
    assert result.code == 1, result.output
    assert ("Work: stays in Work (no rule) → stays in Work +\\Flagged (rule star-invoices)  [1 message]"
            in result.stdout)
    assert "Work/report.eml" in result.stdout


def test_an_include_change(tmp_path: Path, fixtures: Path) -> None:
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "common.yaml").write_text(
        "version: 1\nrules:\n  - name: team-lunch\n    when: {subject: {contains: lunch}}\n    then: [{move: Team}]\n")
    (tmp_path / "team" / "common2.yaml").write_text(
        "version: 1\nrules:\n  - name: team-lunch\n    when: {subject: {contains: lunch}}\n    then: [{move: Food}]\n")
    result = diff(tmp_path, "include: [team/common.yaml]\n" + BASE, "include: [team/common2.yaml]\n" + BASE, fixtures)
    assert result.code == 1, result.output
    assert "INBOX: Team (rule team-lunch) → Food (rule team-lunch)  [1 message]" in result.stdout


def test_markdown_escapes_what_a_sender_wrote(tmp_path: Path, fixtures: Path) -> None:
    result = diff(tmp_path, BASE, BASE.replace("move: Newsletters", "move: '[x](evil)'"), fixtures,
                  "--format", "markdown")
    assert result.code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "### mailrules diff: 2 messages of 6 change"
    assert "#### INBOX: Newsletters (rule bulk) → \\[x\\](evil) (rule bulk) (2 messages)" in lines
    assert "| invoice.eml | 2026-11-01 12:00 | billing@shop.example | Your invoice \\| 42 |" in lines
    assert "| message | date | from | subject |" in lines


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_a_side_at_a_git_revision_reads_its_includes_from_that_revision(tmp_path: Path, fixtures: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    (repo / "team").mkdir(parents=True)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    (repo / "rules.yaml").write_text("include: [team/common.yaml]\n" + BASE)
    (repo / "team" / "common.yaml").write_text(
        "version: 1\nrules:\n  - name: team-lunch\n    when: {subject: {contains: lunch}}\n    then: [{move: Team}]\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "rules")
    # Only the included file changes in the working tree.
    (repo / "team" / "common.yaml").write_text(
        "version: 1\nrules:\n  - name: team-lunch\n    when: {subject: {contains: lunch}}\n    then: [{move: Food}]\n")
    monkeypatch.chdir(repo)
    result = run_cli(["diff", "git:HEAD:rules.yaml", "rules.yaml", "--fixtures", str(fixtures)])
    assert result.code == 1, result.output
    assert "INBOX: Team (rule team-lunch) → Food (rule team-lunch)  [1 message]" in result.stdout
    same = run_cli(["diff", "git:HEAD:rules.yaml", "git:HEAD:rules.yaml", "--fixtures", str(fixtures)])
    assert (same.code, same.stdout) == (0, "")


def test_a_broken_side_at_a_git_revision_names_its_place_there(tmp_path: Path, fixtures: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    (repo / "rules.yaml").write_text(BASE.replace("move: Notifications", "mvoe: Notifications"))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "broken")
    monkeypatch.chdir(repo)
    (repo / "new.yaml").write_text(BASE)
    result = run_cli(["diff", "git:HEAD:rules.yaml", "new.yaml", "--fixtures", str(fixtures)])
    assert result.code == 2
    assert result.stderr.startswith("git:HEAD:rules.yaml:5:"), result.stderr
    assert "Traceback" not in result.output
    for spec, reason in (("git:nosuchrev:rules.yaml", "git archive failed"),
                         ("git:HEAD:missing.yaml", "no such file at revision HEAD"),
                         ("git:HEAD", "git:REV:path")):
        bad = run_cli(["diff", spec, "new.yaml", "--fixtures", str(fixtures)])
        assert bad.code == 2 and reason in bad.stderr, (spec, bad.output)
