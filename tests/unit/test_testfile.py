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
