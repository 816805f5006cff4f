"""Rule test files: cases load with paths relative to the test file and problems at file:line:col."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mailrules.errors import RuleFileError
from mailrules.testfile import Expect, TestCase, build_message, load_test_suite

SUITE = """\
rules: ../rules.yaml
cases:
  - name: PR notification leaves the inbox
    message: messages/github-pr.eml
    folder: INBOX
    flags: [seen]
    now: 2026-11-20T10:00:00Z
    expect:
      rules: [github]
      folders: [Notifications/GitHub]
      flags: [seen]
      replies: 0
  - name: an inline invoice
    headers:
      From: Billing <billing@shop.example>
      Subject: Invoice 42
      Received:
        - "from a by b; Thu, 19 Nov 2026 10:00:00 +0000"
        - "from c by d; Thu, 19 Nov 2026 09:00:00 +0000"
    body: "Total: 12 €\\n"
    flags: $Invoice
    now: 2026-11-20
    expect:
      folders: []
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "rules.yaml").write_text("version: 1\n", encoding="utf-8")
    (tmp_path / "tests" / "messages").mkdir(parents=True)
    (tmp_path / "tests" / "messages" / "github-pr.eml").write_bytes(b"From: notifications@github.com\n\nhi\n")
    return tmp_path


def write_suite(project: Path, text: str) -> Path:
    path = project / "tests" / "github.test.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_test_file_loads_with_paths_relative_to_it(project: Path) -> None:
    suite = load_test_suite(write_suite(project, SUITE))
    assert suite.rules_path == str(project / "rules.yaml")
    first, second = suite.cases
    assert first == TestCase(
        name="PR notification leaves the inbox",
        expect=Expect(rules=("github",), folders=("Notifications/GitHub",), flags=("\\Seen",), replies=0),
        message_path=str(project / "tests" / "messages" / "github-pr.eml"),
        flags=("\\Seen",),
        now=datetime(2026, 11, 20, 10, tzinfo=timezone.utc),
    )
    assert first.message_bytes() == b"From: notifications@github.com\n\nhi\n"
    assert (second.folder, second.flags, second.now, second.expect) == (
        "INBOX",
        ("$Invoice",),
        datetime(2026, 11, 20, tzinfo=timezone.utc),
        Expect(folders=()),
    )
    assert second.loc.line == 13


def test_an_inline_message_becomes_rfc_5322_bytes(project: Path) -> None:
    inline = load_test_suite(write_suite(project, SUITE)).cases[1]
    message = email.message_from_bytes(inline.message_bytes(), policy=email.policy.default)
    assert message["Subject"] == "Invoice 42"
    assert message["From"].addresses[0].addr_spec == "billing@shop.example"
    assert len(message.get_all("Received")) == 2
    assert message.get_content() == "Total: 12 €\n"


def test_build_message_honours_a_text_subtype_and_ignores_a_transfer_encoding() -> None:
    raw = build_message([("Content-Type", "text/html; charset=latin-1"), ("Content-Transfer-Encoding", "7bit")], "<p>Grüße</p>")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert (message.get_content_type(), message.get_content_charset()) == ("text/html", "utf-8")
    assert message.get_content() == "<p>Grüße</p>\n"


@pytest.mark.parametrize(
    ("case", "message", "line"),
    [
        ("  - name: c\n    message: nope.eml\n    expect: {replies: 0}\n", "message file not found", 4),
        ("  - name: c\n    expect: {replies: 0}\n", "item 1 of 'cases' needs one of message, headers", 3),
        ("  - name: c\n    message: messages/github-pr.eml\n    headers: {From: a@b.c}\n    expect: {replies: 0}\n", "takes only one of message, headers", 5),
        ("  - name: c\n    message: messages/github-pr.eml\n    body: hi\n    expect: {replies: 0}\n", "'body' needs 'headers'", 5),
        ("  - name: c\n    headers: {From: a@b.c}\n    expect: {}\n", "'expect' must not be empty", 5),
        ("  - name: c\n    headers: {From: a@b.c}\n    expect: {replies: -1}\n", "'replies' must be at least 0", 5),
        ("  - name: c\n    headers: {From: a@b.c}\n    flags: [two words]\n    expect: {replies: 0}\n", "may not contain spaces", 5),
        ("  - name: c\n    headers: {From: a@b.c}\n    now: tomorrow\n    expect: {replies: 0}\n", "'tomorrow' is not a date and time", 5),
        ("  - name: c\n    headers: {From: a@b.c}\n    folder: 'Lists/*'\n    expect: {replies: 0}\n", "wildcards", 5),
        ("  - name: c\n    headers: {'X Bad': a}\n    expect: {replies: 0}\n", "'X Bad' is not a header name", 4),
        ("  - name: c\n    headers: {Content-Type: image/png}\n    expect: {replies: 0}\n", "needs a message file instead", 4),
        ("  - name: c\n    headers: {From: a@b.c}\n    expct: {replies: 0}\n", "unknown key 'expct' in test case; did you mean 'expect'?", 5),
        ("  - name: c\n    headers: {From: a@b.c}\n    expect: {replies: 0}\n  - name: c\n    headers: {From: a@b.c}\n    expect: {replies: 1}\n",
         "duplicate case name 'c'", 6),
    ],
)
def test_test_file_problems(project: Path, case: str, message: str, line: int) -> None:
    path = write_suite(project, "rules: ../rules.yaml\ncases:\n" + case)
    with pytest.raises(RuleFileError) as raised:
        load_test_suite(path)
    assert any(message in p.message and p.loc.line == line and p.loc.file == str(path) for p in raised.value.problems), raised.value


def test_a_missing_rule_file_is_reported_at_the_rules_key(project: Path) -> None:
    path = write_suite(project, "rules: nope.yaml\ncases:\n  - name: c\n    headers: {From: a@b.c}\n    expect: {replies: 0}\n")
    with pytest.raises(RuleFileError, match=r"github.test.yaml:1:8: error: rule file not found"):
        load_test_suite(path)


# ---------------------------------------------------------------- running cases: replies, redirects, names, JUnit

RULES = """\
version: 1
rules:
  - name: support-ack
    when: {to: {address: support@example.com}}
    then:
      - reply:
          subject: "We got it: {{ message.subject }}"
          body: "Hello,\\nwe will answer {{ message.subject }} within a day.\\n"
          require_recipient: false
      - redirect: tickets@example.com
      - move: Support
"""

CASE = """\
rules: ../rules.yaml
cases:
  - name: a ticket
    headers:
      From: Erin <erin@customer.example>
      Reply-To: erin.private@customer.example
      To: support@example.com
      Subject: Printer on fire
    body: Help.
    expect:
{expect}
"""


def run_case(project: Path, expect: str, *extra: str):  # type: ignore[no-untyped-def]
    from tests.support.cli import run_cli

    (project / "rules.yaml").write_text(RULES)
    path = write_suite(project, CASE.format(expect=expect))
    return run_cli(["test", str(path), *extra])


def test_reply_and_redirect_expectations_pass_when_the_sends_match(project: Path) -> None:
    result = run_case(project, "      redirects: [TICKETS@example.com]\n"
                               "      reply:\n"
                               "        to: erin.private@customer.example\n"
                               "        subject: 'We got it: Printer on fire'\n"
                               "        body_contains: [will answer Printer on fire, within a day]\n")
    assert result.code == 0, result.output
    assert "1 passed, 0 failed" in result.stdout


def test_each_reply_and_redirect_difference_is_named(project: Path) -> None:
    result = run_case(project, "      redirects: [accounting@example.com]\n"
                               "      reply:\n"
                               "        to: erin@customer.example\n"
                               "        subject: 'Auto: Printer on fire'\n"
                               "        body_contains: back on Monday\n")
    assert result.code == 1, result.output
    out = result.stdout
    assert "redirects: expected ['accounting@example.com'], got ['tickets@example.com']" in out
    assert "reply (rule support-ack) to: expected 'erin@customer.example', got 'erin.private@customer.example'" in out
    assert "reply (rule support-ack) subject: expected 'Auto: Printer on fire', got 'We got it: Printer on fire'" in out
    assert ("reply (rule support-ack) body: expected it to contain 'back on Monday'; "
            "it is 'Hello,\\nwe will answer Printer on fire within a day.\\n'") in out


def test_an_expected_reply_that_is_skipped_says_why(project: Path) -> None:
    (project / "rules.yaml").write_text(RULES)
    path = write_suite(project, CASE.format(expect="      reply: {subject: x}").replace(
        "      Subject: Printer on fire\n", "      Subject: Printer on fire\n      Auto-Submitted: auto-replied\n"))
    from tests.support.cli import run_cli

    result = run_cli(["test", str(path)])
    assert result.code == 1, result.output
    assert "reply: expected 1 sent, got 0 (skipped: support-ack: " in result.stdout


def test_an_unknown_rule_name_in_expect_is_an_error_at_its_place(project: Path) -> None:
    result = run_case(project, "      rules: [support-ack, suport-ack]")
    assert result.code == 2, result.output
    path = project / "tests" / "github.test.yaml"
    assert (f"{path}:11:28: error: case 'a ticket': no rule named 'suport-ack' in {project / 'rules.yaml'}; "
            "did you mean 'support-ack'?") in result.stdout
    assert "PASSED" not in result.stdout and "FAILED" not in result.stdout
    as_json = run_case(project, "      rules: [nothing-like-it]", "--json")
    assert as_json.code == 2
    import json

    [problem] = json.loads(as_json.stdout)["problems"]
    assert problem["line"] == 11 and "no rule named 'nothing-like-it'" in problem["message"], problem


def test_a_misspelt_reply_expectation_is_a_schema_problem(project: Path) -> None:
    result = run_case(project, "      reply: {bdy_contains: x}")
    assert result.code == 2, result.output
    assert "github.test.yaml:11:" in result.stdout and "'bdy_contains'" in result.stdout


def test_junit_xml_has_a_testcase_per_case_with_failures_and_errors(project: Path, tmp_path: Path) -> None:
    from xml.etree import ElementTree as ET

    from tests.support.cli import run_cli

    (project / "rules.yaml").write_text(RULES)
    good = write_suite(project, CASE.format(expect="      folders: [Support]").replace(
        "cases:\n", "cases:\n  - name: passes\n    headers: {From: a@b.example}\n    expect: {folders: [INBOX]}\n"))
    bad = project / "tests" / "bad.test.yaml"
    bad.write_text("rules: ../rules.yaml\ncases:\n  - name: wrong place\n    headers: {From: a@b.example}\n"
                   "    expect: {folders: [Elsewhere]}\n  - name: unreadable\n    message: gone.eml\n"
                   "    expect: {folders: [INBOX]}\n")
    invalid = project / "tests" / "invalid.test.yaml"
    invalid.write_text("rules: ../rules.yaml\ncases:\n  - name: typo\n    headers: {From: a@b.example}\n"
                       "    expect: {rules: [nope]}\n")
    report = tmp_path / "junit.xml"
    result = run_cli(["test", str(good), str(invalid), "--junit", str(report)])
    assert result.code == 2, result.output
    root = ET.parse(report).getroot()
    assert (root.tag, root.get("tests"), root.get("failures"), root.get("errors")) == ("testsuites", "3", "0", "1")
    suites = {suite.get("name"): suite for suite in root}
    cases = suites[str(good)].findall("testcase")
    assert [case.get("name") for case in cases] == ["passes", "a ticket"]
    assert all(not list(case) for case in cases) and cases[0].get("classname").endswith("tests.github")
    [error] = suites[str(invalid)].findall("testcase/error")
    assert "no rule named 'nope'" in error.get("message")
    # A message file that vanished after loading is an error of that case, not a failure.
    bad.write_text(bad.read_text().replace("gone.eml", "messages/github-pr.eml"))
    (project / "tests" / "messages" / "github-pr.eml").unlink()
    result = run_cli(["test", str(bad), "--junit", str(report)])
    assert result.code == 2  # the missing file is found when the test file loads
    (project / "tests" / "messages" / "github-pr.eml").write_bytes(b"From: x@y.example\n\nhi\n")
    result = run_cli(["test", str(bad), "--junit", str(report)])
    assert result.code == 1, result.output
    [failure] = ET.parse(report).getroot().findall("testsuite/testcase/failure")
    assert failure.get("message") == "folders: expected ['Elsewhere'], got ['INBOX']"
    assert failure.text.startswith(f"{bad}:3:5: wrong place")


def test_a_folder_stands_for_its_test_files_and_one_without_any_is_an_error(project: Path) -> None:
    from tests.support.cli import run_cli

    (project / "rules.yaml").write_text(RULES)
    write_suite(project, CASE.format(expect="      folders: [Support]"))
    (project / "tests" / ".hidden").mkdir()
    (project / "tests" / ".hidden" / "x.test.yaml").write_text("not: a test\n")
    result = run_cli(["test", str(project)])
    assert result.code == 0, result.output
    assert "github.test.yaml::a ticket PASSED" in result.stdout
    empty = run_cli(["test", str(project / "tests" / "messages")])
    assert empty.code == 2 and "no rule test files (*.test.yaml) in this folder" in empty.stderr
