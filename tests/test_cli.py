"""The command line, in-process: exit codes, messages and outputs users and CI rely on."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.support.workspace import run_cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "rules.example.yaml")
FIXTURES = ROOT / "tests" / "fixtures"


def test_validate_accepts_the_example() -> None:
    result = run_cli(["validate", EXAMPLE])
    assert result.code == 0
    assert "ok (17 rules from 2 files)" in result.stdout


def test_validate_reports_file_line_and_column_and_exits_2(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  - name: a\n    when: {form: x@example.com}\n    then: [delete]\n")
    result = run_cli(["validate", str(rules)])
    assert result.code == 2
    assert f"{rules}:4:12: error:" in result.stderr
    assert "did you mean 'from'" in result.stderr
    assert "Traceback" not in result.output


def test_validate_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(["validate", str(tmp_path / "nope.yaml")])
    assert result.code == 2 and "nope.yaml" in result.stderr


def test_explain_json_has_the_spec_shape() -> None:
    result = run_cli(["explain", EXAMPLE, str(FIXTURES / "github-pr.eml"), "--json"])
    assert result.code == 0, result.output
    data = json.loads(result.stdout)
    assert data["matched"] == ["github"]
    assert data["outcome"] == {"folders": ["Notifications/GitHub"], "flags": [], "replies": 0, "redirects": []}


def test_explain_json_writes_system_flags_with_a_backslash_sorted() -> None:
    result = run_cli(["explain", EXAMPLE, str(FIXTURES / "invoice-pdf.eml"), "--json", "--flags", "seen"])
    outcome = json.loads(result.stdout)["outcome"]
    assert outcome["flags"] == sorted(["$Invoice", "\\Flagged", "\\Seen"])
    assert outcome["folders"] == ["INBOX", "Finance/Invoices"]
    assert outcome["redirects"] == ["accounting@example.com"]


def test_explain_says_which_condition_decided() -> None:
    result = run_cli(["explain", EXAMPLE, str(FIXTURES / "github-pr.eml")])
    assert result.code == 0
    assert "MATCH  github" in result.stdout
    assert "notifications@github.com" in result.stdout
    assert "(disabled)" in result.stdout  # the away rule


def test_explain_reads_a_malformed_message_without_crashing() -> None:
    for name in ("truncated-mime.eml", "nul-byte.eml", "bad-charset.eml", "nested-100.eml"):
        result = run_cli(["explain", EXAMPLE, str(FIXTURES / name), "--json"])
        assert result.code == 0, (name, result.output)
        json.loads(result.stdout)


def test_the_example_rule_tests_pass() -> None:
    result = run_cli(["test", str(ROOT / "examples" / "tests" / "example.test.yaml")])
    assert result.code == 0, result.stdout
    assert "8 passed, 0 failed" in result.stdout


def test_a_failing_rule_test_shows_expected_and_actual_and_exits_1(tmp_path: Path) -> None:
    test_file = tmp_path / "t.test.yaml"
    test_file.write_text(f"rules: {EXAMPLE}\ncases:\n  - name: wrong folder\n"
                         "    headers: {From: notifications@github.com, Subject: x}\n"
                         "    body: hi\n    expect:\n      folders: [INBOX]\n")
    result = run_cli(["test", str(test_file)])
    assert result.code == 1
    assert "wrong folder FAILED" in result.stdout
    assert "folders: expected ['INBOX'], got ['Notifications/GitHub']" in result.stdout
    assert f"{test_file}:3:" in result.stdout


def test_an_invalid_rule_test_file_exits_2(tmp_path: Path) -> None:
    test_file = tmp_path / "t.test.yaml"
    test_file.write_text(f"rules: {EXAMPLE}\ncases:\n  - name: x\n    expekt: {{}}\n")
    result = run_cli(["test", str(test_file)])
    assert result.code == 2
    assert f"{test_file}:4:5" in result.stdout


def test_compile_to_imap_shows_criteria_and_local_checks() -> None:
    result = run_cli(["compile", EXAMPLE, "--to", "imap"])
    assert result.code == 0
    assert 'FROM "github.com"' in result.stdout or "FROM github.com" in result.stdout


def test_compile_to_sieve_prints_a_script(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  - name: github\n    when: {from: {domain: github.com}}\n"
                     "    then: [{flag: seen}, {move: Notifications/GitHub}]\n")
    result = run_cli(["compile", str(rules), "--to", "sieve"])
    assert result.code == 0, result.output
    assert "require [" in result.stdout
    assert 'fileinto :create "Notifications/GitHub"' in result.stdout


def test_compile_to_sieve_names_every_rule_it_cannot_express() -> None:
    result = run_cli(["compile", EXAMPLE, "--to", "sieve"])
    assert result.code == 2
    assert "rules.example.yaml:57:7: error: rule 'invoices'" in result.stderr
    assert "common.yaml:31:7: error: rule 'ci-failures'" in result.stderr


def test_the_readme_first_command_plans_on_the_bundled_maildir_without_a_server(tmp_path: Path) -> None:
    sample = tmp_path / "Maildir"
    shutil.copytree(ROOT / "examples" / "Maildir", sample)
    before = sorted(path.name for path in sample.rglob("*"))
    result = run_cli(["plan", EXAMPLE, "--maildir", str(sample), "--state", str(tmp_path / "s.db")])
    assert result.code == 0, result.output
    assert "move to Notifications/GitHub" in result.stdout
    assert "reply to erin@customer.example" in result.stdout
    assert sorted(path.name for path in sample.rglob("*")) == before  # plan changed nothing


def test_run_on_a_maildir_stores_keywords_as_dovecot_does(tmp_path: Path) -> None:
    sample = tmp_path / "Maildir"
    shutil.copytree(ROOT / "examples" / "Maildir", sample)
    result = run_cli(["run", EXAMPLE, "--maildir", str(sample), "--state", str(tmp_path / "s.db")])
    assert result.code == 0, result.output
    assert "$Invoice" in (sample / ".Finance.Invoices" / "dovecot-keywords").read_text()


def test_run_on_a_maildir_moves_and_a_second_run_plans_nothing(tmp_path: Path) -> None:
    sample = tmp_path / "Maildir"
    shutil.copytree(ROOT / "examples" / "Maildir", sample)
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  - name: github\n    when: {from: {domain: github.com}}\n"
                     "    then: [{flag: seen}, {move: Notifications/GitHub}]\n")
    args = ["--maildir", str(sample), "--state", str(tmp_path / "s.db")]
    assert run_cli(["run", str(rules), *args]).code == 0
    moved = list((sample / ".Notifications.GitHub" / "cur").iterdir())
    assert len(moved) == 5 and all(path.name.endswith("S") for path in moved)
    assert "Nothing to do." in run_cli(["plan", str(rules), *args]).stdout


def test_usage_errors_exit_2() -> None:
    assert run_cli(["plan"]).code == 2
    assert run_cli(["explain", EXAMPLE, "x.eml", "--now", "yesterday"]).code == 2


@pytest.mark.parametrize("command", ["plan", "run"])
def test_an_unknown_account_is_a_clear_error(tmp_path: Path, command: str) -> None:
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text("accounts:\n  home:\n    maildir: Maildir\n")
    result = run_cli([command, EXAMPLE, "--accounts", str(accounts), "--account", "work",
                      "--state", str(tmp_path / "s.db")])
    assert result.code == 6
    assert "unknown account 'work'" in result.stderr


# ---------------------------------------------------------------- human output


def test_explain_shows_durations_and_patterns_as_a_person_writes_them() -> None:
    result = run_cli(["explain", EXAMPLE, str(FIXTURES / "github-pr.eml"), "--now", "2026-11-20T10:00:00Z"])
    assert result.code == 0, result.output
    text = result.stdout
    assert r"regex /\b(failed|broken)\b/" in text  # as written in the rule file
    assert "1 day 17 hours ago: not older than 7 days" in text
    assert not re.search(r"\d+:\d\d:\d\d", text), text  # no timedelta reprs
    assert "\\\\" not in text and "'github.com'" not in text, text  # no Python string reprs
    assert 'domain "github.com" is or is under "github.com"' in text
    as_json = json.loads(run_cli(["explain", EXAMPLE, str(FIXTURES / "github-pr.eml"), "--json",
                                  "--now", "2026-11-20T10:00:00Z"]).stdout)
    why = [line for rule in as_json["rules"] for line in rule["why"]]
    assert any(r"/\b(failed|broken)\b/" in line for line in why)


def test_validate_json_has_stable_keys(tmp_path: Path) -> None:
    good = json.loads(run_cli(["validate", EXAMPLE, "--json"]).stdout)
    assert good == {"path": EXAMPLE, "ok": True, "rules": 17, "files": good["files"], "problems": []}
    assert len(good["files"]) == 2
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  - name: a\n    when: {form: x@example.com}\n    then: [delete]\n"
                     "  - name: b\n    when: all\n    then: [delete]\n")
    result = run_cli(["validate", str(rules), "--json"])
    assert result.code == 2 and result.stderr == ""
    bad = json.loads(result.stdout)
    assert bad["ok"] is False
    assert {"file": str(rules), "line": 4, "col": 12, "severity": "error"}.items() <= bad["problems"][0].items()
    assert "did you mean 'from'" in bad["problems"][0]["message"]
    assert any(problem["severity"] == "warning" for problem in bad["problems"])


def test_test_json_lists_every_case(tmp_path: Path) -> None:
    result = run_cli(["test", str(ROOT / "examples" / "tests" / "example.test.yaml"), "--json"])
    assert result.code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"passed", "failed", "cases", "problems"}
    assert data["failed"] == 0 and data["passed"] == len(data["cases"]) > 0
    assert set(data["cases"][0]) == {"file", "name", "loc", "passed", "mismatches"}
    broken = tmp_path / "broken.test.yaml"
    broken.write_text("rules: nowhere.yaml\ncases: []\n")
    invalid = run_cli(["test", str(broken), "--json"])
    assert invalid.code == 2
    assert json.loads(invalid.stdout)["problems"][0]["file"] == str(broken)


def test_json_output_stays_json_when_a_subject_carries_c1_controls(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.eml").write_bytes(
        b"From: a@example.org\r\nTo: b@example.org\r\nSubject: csi \xc2\x9b2J here\r\n"
        b"Message-ID: <c1@example.org>\r\n\r\nbody\r\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  - name: csi\n    when: {subject: csi}\n    then: [{flag: seen}]\n")
    args = ["plan", str(rules), "--maildir", str(maildir), "--state", str(tmp_path / "s.db")]
    as_json = run_cli([*args, "--json"])
    assert as_json.code == 0, as_json.output
    assert "\x9b" not in as_json.stdout  # escaped for the terminal ...
    assert json.loads(as_json.stdout)["rules"][0]["examples"][0]["subject"] == "csi \x9b2J here"  # ... and still JSON
    text = run_cli(args)
    assert "\x9b" not in text.stdout and "csi \\u009b2J here" in text.stdout
