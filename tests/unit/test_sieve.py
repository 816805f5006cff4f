"""The Sieve export: what each condition and action becomes, and that Pigeonhole compiles it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from mailrules.errors import Loc
from mailrules.model import (
    ActiveWindow,
    AddFlags,
    AddressTest,
    AgeTest,
    All,
    Any,
    AttachmentTest,
    AttachmentPartTest,
    BodyTest,
    MimeHeaderTest,
    CountTest,
    DatePartTest,
    PartCheck,
    Condition,
    Copy,
    DateTest,
    Delete,
    FlagTest,
    HeaderExists,
    HeaderTest,
    Move,
    Not,
    Redirect,
    RemoveFlags,
    Reply,
    Rule,
    RuleSet,
    SizeTest,
    Stop,
    Trash,
)
from mailrules.sieve import SieveUnsupported, quote, sieve_test, to_sieve
from tests.conformance.pigeonhole import Pigeonhole, require_pigeonhole

RECIPIENT = ("To", "Cc", "Bcc")
SEEN = FlagTest("\\Seen", True)


def subject(operator: str, *values: str, case_sensitive: bool = False) -> HeaderTest:
    return HeaderTest("subject", ("Subject",), operator, values, case_sensitive)  # type: ignore[arg-type]


def list_id(operator: str, *values: str) -> HeaderTest:
    return HeaderTest("list_id", ("List-Id",), operator, values, list_id=True)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pigeonhole() -> Iterator[Pigeonhole]:
    require_pigeonhole()
    with Pigeonhole() as tools:
        yield tools


# ---------------------------------------------------------------- conditions

# condition -> (Sieve test, extensions it needs)
TESTS: dict[str, tuple[Condition, str, set[str]]] = {
    "contains": (subject("contains", "invoice"), 'header :contains "Subject" "invoice"', set()),
    "several values": (subject("contains", "a", "b"), 'header :contains "Subject" ["a", "b"]', set()),
    "is, case-sensitive": (
        HeaderTest("header", ("X-Spam-Flag",), "is", ("YES",), case_sensitive=True),
        'header :is :comparator "i;octet" "X-Spam-Flag" "YES"',
        set(),
    ),
    "matches keeps its escapes": (subject("matches", r"*[JIRA]*\*?"), r'header :matches "Subject" "*[JIRA]*\\*?"', set()),
    "regex becomes POSIX": (
        subject("regex", r"^Invoice \d{4,}-[A-Z]{2}$", r"[]a-]x[^^]\S"),
        r'header :regex "Subject" ["^Invoice [0-9]{4,}-[A-Z]{2}$", "[]a[.-.]]x[^[.^.]][^[:space:]]"]',
        {"regex"},
    ),
    "recipient reads three headers": (
        HeaderTest("recipient", RECIPIENT, "contains", ("team@",)),
        'header :contains ["To", "Cc", "Bcc"] "team@"',
        set(),
    ),
    "list_id is: the identifier in brackets, or the whole value": (
        list_id("is", "python-dev.python.org"),
        'anyof(header :matches "List-Id" "*<python-dev.python.org>*", '
        'allof(not header :contains "List-Id" "<", header :is "List-Id" "python-dev.python.org"))',
        set(),
    ),
    "list_id contains": (
        list_id("contains", "python*"),
        r'anyof(header :matches "List-Id" "*<*python\\**>*", '
        r'allof(not header :contains "List-Id" "<", header :contains "List-Id" "python*"))',
        set(),
    ),
    "address": (
        AddressTest("recipient", RECIPIENT, "address", ("me@example.com",)),
        'address :all :is ["To", "Cc", "Bcc"] "me@example.com"',
        set(),
    ),
    "domain or a subdomain": (
        AddressTest("from", ("From",), "domain", ("github.com.",)),
        'anyof(address :domain :is "From" "github.com", address :domain :matches "From" "*.github.com")',
        set(),
    ),
    "localpart": (AddressTest("from", ("From",), "localpart", ("billing",)), 'address :localpart :is "From" "billing"', set()),
    "count": (CountTest("Received", ("Received",), "gt", 10),
              'header :count "gt" :comparator "i;ascii-numeric" "Received" "10"', {"relational", "comparator-i;ascii-numeric"}),
    "count of addresses": (CountTest("recipient", RECIPIENT, "ge", 3, addresses=True),
                           'address :count "ge" :comparator "i;ascii-numeric" ["To", "Cc", "Bcc"] "3"',
                           {"relational", "comparator-i;ascii-numeric"}),
    "index": (HeaderTest("header", ("Received",), "contains", ("mx",), index=2),
              'header :index 2 :contains "Received" "mx"', {"index"}),
    "index from the end": (AddressTest("header", ("Delivered-To",), "detail", ("x",), index=-1),
                           'address :index 1 :last :detail :is "Delivered-To" "x"', {"index", "subaddress"}),
    "weekday: Sieve counts from Sunday": (
        DatePartTest("sent", (PartCheck("weekday", (5, 6)),)),
        'date :zone "+0000" :value "eq" :comparator "i;ascii-numeric" "date" "weekday" ["6", "0"]',
        {"date", "relational", "comparator-i;ascii-numeric"}),
    "arrival hour: the delivery time": (
        DatePartTest("arrival", (PartCheck("hour", (), (("ge", 18), ("lt", 22))),), "-0530"),
        'allof(currentdate :zone "-0530" :value "ge" :comparator "i;ascii-numeric" "hour" "18", '
        'currentdate :zone "-0530" :value "lt" :comparator "i;ascii-numeric" "hour" "22")',
        {"date", "relational", "comparator-i;ascii-numeric"}),
    "user": (AddressTest("to", ("To",), "user", ("alice",)), 'address :user :is "To" "alice"', {"subaddress"}),
    "detail": (AddressTest("to", ("To",), "detail", ("github",)), 'address :detail :is "To" "github"', {"subaddress"}),
    "display_name": (AddressTest("from", ("From",), "display_name", ("Alice",)), 'header :contains "From" "Alice"', set()),
    "exists: any of the headers": (HeaderExists("recipient", RECIPIENT, True), 'anyof(exists "To", exists "Cc", exists "Bcc")', set()),
    "exists: false": (HeaderExists("header", ("X-Spam-Flag",), False), 'not exists "X-Spam-Flag"', set()),
    "body": (BodyTest("body", "contains", ("unsubscribe",)), 'body :text :contains "unsubscribe"', {"body"}),
    "body regex": (
        BodyTest("body", "regex", (r"order \d+",), case_sensitive=True),
        'body :text :regex :comparator "i;octet" "order [0-9]+"',
        {"body", "regex"},
    ),
    "larger": (SizeTest("larger", 5 * 1024**2), "size :over 5M", set()),
    "smaller": (SizeTest("smaller", 1000), "size :under 1000", set()),
    "older_than: never, at delivery": (AgeTest("older_than", 86400), "false", set()),
    "newer_than: always, at delivery": (AgeTest("newer_than", 3600), "true", set()),
    "since: the delivery day": (DateTest("arrival", "since", date(2025, 1, 1)), 'currentdate :value "ge" "date" "2025-01-01"', {"date", "relational"}),
    "sent_before: the Date header's day in its own zone": (
        DateTest("sent", "before", date(2025, 1, 31)),
        'date :originalzone :value "lt" "date" "date" "2025-01-31"',
        {"date", "relational"},
    ),
    "flag": (SEEN, r'hasflag "\\Seen"', {"imap4flags"}),
    "keyword absent": (FlagTest("$Label", False), 'not hasflag "$Label"', {"imap4flags"}),
    "all": (All((SEEN, SizeTest("larger", 10))), r'allof(hasflag "\\Seen", size :over 10)', {"imap4flags"}),
    "any": (Any((SEEN, SizeTest("larger", 10))), r'anyof(hasflag "\\Seen", size :over 10)', {"imap4flags"}),
    "not": (Not(Any((SEEN, SizeTest("larger", 10)))), r'not anyof(hasflag "\\Seen", size :over 10)', {"imap4flags"}),
    "all of nothing": (All(()), "true", set()),
    "any of nothing": (Any(()), "false", set()),
}


@pytest.mark.parametrize("cond, text, requires", TESTS.values(), ids=TESTS.keys())
def test_sieve_test(cond: Condition, text: str, requires: set[str]) -> None:
    sieve = sieve_test(cond)
    assert sieve.text == text
    assert sieve.requires == requires


@pytest.mark.parametrize("cond, text, requires", TESTS.values(), ids=TESTS.keys())
def test_pigeonhole_compiles_each_test(pigeonhole: Pigeonhole, cond: Condition, text: str, requires: set[str]) -> None:
    script = to_sieve(RuleSet((Rule("r", cond, (AddFlags(("$Hit",)),)),)))
    ok, output = pigeonhole.compile(script)
    assert ok, output


def test_approximations_carry_a_note() -> None:
    assert "display-name" in sieve_test(AddressTest("from", ("From",), "display_name", ("Alice",))).notes[0]
    assert "ASCII letters only" in sieve_test(subject("contains", "Grüße")).notes[0]
    assert not sieve_test(subject("contains", "Grüße", case_sensitive=True)).notes
    assert "arrives now" in sieve_test(AgeTest("older_than", 86400)).notes[0]


def test_quote_escapes_and_spans_lines() -> None:
    assert quote('a "b" \\c') == '"a \\"b\\" \\\\c"'
    assert quote("one\n.two\n") == "text:\none\n..two\n.\n"


# ---------------------------------------------------------------- a whole script

RULES = RuleSet(
    (
        Rule("github", AddressTest("from", ("From",), "domain", ("github.com",)), (Move("Notifications/GitHub"),),
             description="GitHub notifications\nleave the inbox"),
        Rule("lists", list_id("is", "python-dev.python.org"), (Move("Lists/python"), AddFlags(("\\Seen", "$List")))),
        Rule("archive", subject("contains", "Rechnung"), (Copy("Archive"), RemoveFlags(("\\Flagged",))), create_folders=False),
        Rule("big", All((SizeTest("larger", 5 * 1024**2), Not(FlagTest("\\Flagged", True)))), (Trash("Trash"),)),
        Rule("spam", HeaderExists("header", ("X-Spam-Flag",), True), (Delete(), Stop())),
        Rule("away", SEEN, (Redirect("boss@example.com"), Reply(subject="Away", body="I am away.\n.\n", once_per_seconds=86400 * 3 // 2))),
        Rule("grusse", subject("contains", "Grüße"), (Stop(),)),
        Rule("lkml", subject("contains", "x"), (Move("Y"),), folders=("Lists/*",)),
        Rule("off", subject("contains", "x"), (Move("Y"),), enabled=False),
    ),
    files=("rules.yaml",),
)

GOLDEN = r"""# Sieve filter for rules.yaml (exported by mailrules; rules that run on INBOX)
require ["copy", "fileinto", "imap4flags", "mailbox", "vacation"];

# rule github: GitHub notifications leave the inbox
if anyof(address :domain :is "From" "github.com", address :domain :matches "From" "*.github.com") {
    fileinto :create "Notifications/GitHub";
    stop;
}

# rule lists
if anyof(header :matches "List-Id" "*<python-dev.python.org>*", allof(not header :contains "List-Id" "<", header :is "List-Id" "python-dev.python.org")) {
    addflag ["\\Seen", "$List"];
    fileinto :create "Lists/python";
    stop;
}

# rule archive
if header :contains "Subject" "Rechnung" {
    removeflag "\\Flagged";
    fileinto :copy "Archive";
}

# rule big
if allof(size :over 5M, not hasflag "\\Flagged") {
    fileinto :create "Trash";
    stop;
}

# rule spam
if exists "X-Spam-Flag" {
    discard;
    stop;
}

# rule away
# note: reply: Sieve's vacation counts whole days, so once_per becomes 2 days
if hasflag "\\Seen" {
    redirect :copy "boss@example.com";
    vacation :days 2 :subject "Away" text:
I am away.
..
.
    ;
}

# rule grusse
# note: Sieve folds ASCII letters only: other cases of the non-ASCII letters in 'Grüße' don't match
if header :contains "Subject" "Grüße" {
    stop;
}

# rule lkml: not exported, runs on Lists/*; delivery only files new mail into INBOX

# rule off: not exported, disabled
"""


def test_golden_script() -> None:
    assert to_sieve(RULES) == GOLDEN


def test_pigeonhole_compiles_the_golden_script(pigeonhole: Pigeonhole) -> None:
    ok, output = pigeonhole.compile(to_sieve(RULES))
    assert ok, output


def test_flag_actions_come_first_in_their_listed_order() -> None:
    rule = Rule("r", SEEN, (Copy("A"), RemoveFlags(("$X",)), AddFlags(("$X",))))
    body = to_sieve(RuleSet((rule,))).split("{\n", 1)[1]
    assert body.splitlines()[:3] == ['    removeflag "$X";', '    addflag "$X";', '    fileinto :copy :create "A";']


def test_a_reply_template_without_expressions_is_inlined(tmp_path: Path) -> None:
    template = tmp_path / "away.txt"
    template.write_text("Back on Monday.\n")
    rule = Rule("away", SEEN, (Reply(template=str(template), sender="me@example.com"),))
    assert 'vacation :days 7 :from "me@example.com" text:\nBack on Monday.\n.\n    ;' in to_sieve(RuleSet((rule,)))


# ---------------------------------------------------------------- what can't be exported

HERE = Loc("rules.yaml", 3, 7)


def _refusal(*rules: Rule, read_template: object = None) -> list[str]:
    with pytest.raises(SieveUnsupported) as caught:
        to_sieve(RuleSet(rules), **({"read_template": read_template} if read_template else {}))
    return [str(problem) for problem in caught.value.problems]


def test_has_attachment_becomes_a_foreverypart_loop_before_the_rule() -> None:
    rule = Rule("pdf", All((SEEN, Not(AttachmentTest(True)))), (Move("A"),))
    script = to_sieve(RuleSet((rule,)))
    loop, test = script.split("# rule pdf\n", 1)[1].split("if allof(", 1)
    assert loop.splitlines()[-7:] == [
        'set "attachment_' + loop.split('"attachment_', 1)[1][:8] + '" "";', "foreverypart {",
        loop.splitlines()[-5], loop.splitlines()[-4], "        break;", "    }", "}"]
    assert 'not string :is "${attachment_' in test
    assert {"foreverypart", "mime", "variables"} <= set(re.findall(r'"([a-z0-9;-]+)"', script.splitlines()[1]))


def test_an_attachment_size_is_refused_with_its_location() -> None:
    rule = Rule("big", All((SEEN, AttachmentPartTest(larger=1024, loc=HERE))), (Move("A"),), loc=Loc("rules.yaml", 2, 3))
    assert _refusal(rule) == ["rules.yaml:3:7: error: rule 'big': attachment larger/smaller: Sieve cannot measure a MIME part"]


def test_every_gap_is_reported_at_once() -> None:
    rules = (
        Rule("text", BodyTest("text", "contains", ("x",), loc=Loc("r.yaml", 1, 1)), ()),
        Rule("lid", HeaderTest("list_id", ("List-Id",), "regex", ("x",), list_id=True, loc=Loc("r.yaml", 2, 1)), ()),
        Rule("lazy", subject("regex", "a.*?b"), (), loc=Loc("r.yaml", 3, 1)),
        Rule("nonascii", subject("regex", "Grüße"), (), loc=Loc("r.yaml", 4, 1)),
        Rule("multiline", BodyTest("body", "regex", ("^Total",), loc=Loc("r.yaml", 5, 1)), ()),
    )
    problems = _refusal(*rules)
    assert [problem.split(": ")[2] for problem in problems] == ["rule 'text'", "rule 'lid'", "rule 'lazy'", "rule 'nonascii'", "rule 'multiline'"]
    assert "lazy repeat" in problems[2] and "non-ASCII" in problems[3] and "^/$" in problems[4]


def test_jinja_in_a_reply_is_refused() -> None:
    rule = Rule("away", SEEN, (Reply(subject="Re: {{ message.subject }}", body="x", loc=HERE),))
    assert _refusal(rule) == ["rules.yaml:3:7: error: rule 'away': reply subject: Jinja expressions have no Sieve equivalent"]


def test_an_unreadable_template_is_refused() -> None:
    rule = Rule("away", SEEN, (Reply(template="/nonexistent/away.txt", loc=HERE),))
    assert "cannot be read" in _refusal(rule)[0]


def test_a_flag_change_after_a_copy_is_refused() -> None:
    rules = (Rule("copy", SEEN, (Copy("Archive"),)), Rule("mark", SEEN, (AddFlags(("$Done",)),), loc=HERE))
    assert _refusal(*rules) == [
        "rules.yaml:3:7: error: rule 'mark': changes flags after rule 'copy' copied the message; Sieve files a copy "
        "with the flags it has then, mailrules with the final ones (put the flag rule first)"
    ]


def test_a_second_reply_is_refused() -> None:
    rules = (Rule("a", SEEN, (Reply(body="x"),)), Rule("b", SEEN, (Reply(body="y"),), loc=HERE))
    assert _refusal(*rules) == ["rules.yaml:3:7: error: rule 'b': replies too, but Sieve allows one vacation per message (rule 'a' has it)"]


def test_rules_off_inbox_are_skipped_not_refused() -> None:
    script = to_sieve(RuleSet((Rule("pdf", AttachmentTest(True), (Move("A"),), folders=("Archive",)),)))
    assert "# rule pdf: not exported, runs on Archive" in script
    assert "require" not in script


def test_date_parts_in_a_zone_with_daylight_saving_time_are_refused() -> None:
    rule = Rule("late", DatePartTest("sent", (PartCheck("hour", (), (("ge", 18),)),), "Europe/Berlin", HERE), (Stop(),))
    with pytest.raises(SieveUnsupported, match="zone Europe/Berlin: Sieve's :zone takes a fixed offset"):
        to_sieve(RuleSet((rule,)))


def test_an_active_window_becomes_currentdate_tests() -> None:
    rule = Rule("away", SEEN, (Stop(),), active=ActiveWindow(date(2026, 12, 20), date(2027, 1, 6), "+0100"))
    script = to_sieve(RuleSet((rule,)))
    assert ('if allof(currentdate :zone "+0100" :value "ge" "date" "2026-12-20", '
            r'currentdate :zone "+0100" :value "le" "date" "2027-01-06", hasflag "\\Seen") {') in script
    assert '"date"' in script.split("\n")[1] and '"relational"' in script.split("\n")[1]


def test_the_envelope_keys_become_envelope_tests_with_the_caveat() -> None:
    cond = AddressTest("envelope_to", ("Delivered-To", "X-Original-To"), "detail", ("lists",))
    script = to_sieve(RuleSet((Rule("lists", cond, (Stop(),)),)))
    assert 'if envelope :detail :is "to" "lists" {' in script
    assert "# note: envelope_to: Sieve reads the real SMTP envelope" in script
    with pytest.raises(SieveUnsupported, match="the envelope has no display name"):
        to_sieve(RuleSet((Rule("x", AddressTest("envelope_from", ("Return-Path",), "display_name", ("a",)), (Stop(),)),)))


def test_mime_header_becomes_an_anychild_test_and_attachment_a_part_loop() -> None:
    rule = Rule("pdf", MimeHeaderTest("Content-Type", "contains", ("pdf",)), (Stop(),))
    script = to_sieve(RuleSet((rule,)))
    assert 'if header :mime :anychild :contains "Content-Type" "pdf" {' in script
    assert '"mime"' in script.split("\n")[1]
    assert "foreverypart" in to_sieve(RuleSet((Rule("a", AttachmentPartTest(types=("application/pdf",)), (Stop(),)),)))


def test_a_body_rule_names_every_part_sieve_reads_differently() -> None:
    script = to_sieve(RuleSet((Rule("prize", BodyTest("body", "contains", ("prize",)), (Stop(),)),)))
    notes = [line for line in script.splitlines() if line.startswith("# note: body:")]
    assert any("message/rfc822" in note and "multipart/digest" in note for note in notes)
    assert any("without a boundary" in note and "invalid Content-Type" in note for note in notes)
    assert any("HTML" in note for note in notes)
