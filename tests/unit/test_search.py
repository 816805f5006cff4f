"""The IMAP SEARCH pre-filter: what each condition sends, and whether the answer is final.

The rule every row obeys: the server may return more messages than match, never fewer.
Rows marked exact are those where the server's answer is the rule's answer.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from imapclient.imapclient import _normalise_search_criteria  # what IMAPClient.search sends

from mailrules.backends.base import FetchNeeds
from mailrules.model import (
    AddFlags,
    AddressTest,
    AgeTest,
    All,
    Any,
    AttachmentTest,
    BodyTest,
    CountTest,
    Condition,
    Copy,
    DateTest,
    Delete,
    FlagTest,
    HeaderExists,
    HeaderTest,
    Move,
    Not,
    RemoveFlags,
    Reply,
    Rule,
    SizeTest,
)
from mailrules.search import (
    MIN_FRAGMENT,
    ascii_fallback,
    describe,
    fetch_needs,
    glob_literals,
    regex_literals,
    render_imap,
    reply_fetch_needs,
    server_fragment,
    to_search,
    volatile_flags_before,
)

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
RECIPIENT = ("To", "Cc", "Bcc")


def subject(operator: str, *values: str, case_sensitive: bool = False) -> HeaderTest:
    return HeaderTest("subject", ("Subject",), operator, values, case_sensitive)  # type: ignore[arg-type]


def sender(operator: str, *values: str) -> HeaderTest | AddressTest:
    if operator in ("address", "domain", "localpart", "display_name"):
        return AddressTest("from", ("From",), operator, values)  # type: ignore[arg-type]
    return HeaderTest("from", ("From",), operator, values)  # type: ignore[arg-type]


SEEN, UNSEEN = FlagTest("\\Seen", True), FlagTest("\\Seen", False)
FLAGGED, DRAFT = FlagTest("\\Flagged", True), FlagTest("\\Draft", True)
LABEL = FlagTest("$Label", True)
BODY = BodyTest("body", "contains", ("unsubscribe",))

# (condition, criteria, exact)
PUSHDOWN = {
    # flags and keywords: exact
    "seen": (SEEN, ("SEEN",), True),
    "not seen": (UNSEEN, ("UNSEEN",), True),
    "answered": (FlagTest("\\Answered", True), ("ANSWERED",), True),
    "not answered": (FlagTest("\\Answered", False), ("UNANSWERED",), True),
    "flagged": (FLAGGED, ("FLAGGED",), True),
    "not flagged": (FlagTest("\\Flagged", False), ("UNFLAGGED",), True),
    "deleted": (FlagTest("\\Deleted", True), ("DELETED",), True),
    "not deleted": (FlagTest("\\Deleted", False), ("UNDELETED",), True),
    "draft": (DRAFT, ("DRAFT",), True),
    "not draft": (FlagTest("\\Draft", False), ("UNDRAFT",), True),
    "keyword": (LABEL, ("KEYWORD", "$Label"), True),
    "keyword absent": (FlagTest("$Label", False), ("UNKEYWORD", "$Label"), True),
    "keyword an IMAP server can't hold": (FlagTest("my label", True), ("ALL",), False),
    # size: exact
    "larger": (SizeTest("larger", 5 * 1024**2), ("LARGER", 5242880), True),
    "smaller": (SizeTest("smaller", 10240), ("SMALLER", 10240), True),
    "size beyond 32 bits": (SizeTest("larger", 2**40), ("ALL",), False),
    # presence of a header: exact (HEADER name "" matches every message that has it)
    "exists": (HeaderExists("header", ("X-Spam-Flag",), True), ("HEADER", "X-Spam-Flag", ""), True),
    "absent": (HeaderExists("header", ("X-Spam-Flag",), False), ("NOT", "HEADER", "X-Spam-Flag", ""), True),
    "recipient exists": (
        HeaderExists("recipient", RECIPIENT, True),
        ("OR", "HEADER", "To", "", "OR", "HEADER", "Cc", "", "HEADER", "Bcc", ""),
        True,
    ),
    "recipient absent": (
        HeaderExists("recipient", RECIPIENT, False),
        ("NOT", "HEADER", "To", "", "NOT", "HEADER", "Cc", "", "NOT", "HEADER", "Bcc", ""),
        True,
    ),
    # days: widened by two days (the server picks the day in its zone); not exact
    "before": (DateTest("arrival", "before", date(2025, 1, 31)), ("BEFORE", date(2025, 2, 2)), False),
    "since": (DateTest("arrival", "since", date(2025, 1, 1)), ("SINCE", date(2024, 12, 30)), False),
    "sent_before": (DateTest("sent", "before", date(2025, 1, 31)), ("SENTBEFORE", date(2025, 2, 2)), False),
    "sent_since is not pushed": (DateTest("sent", "since", date(2025, 1, 1)), ("ALL",), False),
    # ages from now (2026-11-20 10:00Z): the cutoff's day in the eastmost/westmost zone
    "older_than": (AgeTest("older_than", 30 * 86400), ("BEFORE", date(2026, 10, 23)), False),
    "newer_than": (AgeTest("newer_than", 12 * 3600), ("SINCE", date(2026, 11, 19)), False),
    # never pushed
    "body": (BODY, ("ALL",), False),
    "text": (BodyTest("text", "contains", ("invoice",)), ("ALL",), False),
    "has_attachment": (AttachmentTest(True), ("ALL",), False),
    # header strings: the longest part the server is sure to find; never exact
    "subject contains": (subject("contains", "Rechnung"), ("SUBJECT", "rechnung"), False),
    "from contains": (sender("contains", "GitHub"), ("FROM", "github"), False),
    "to contains": (HeaderTest("to", ("To",), "contains", ("bob@example",)), ("TO", "bob@example"), False),
    "other header": (HeaderTest("header", ("X-Mailer",), "contains", ("Evolution",)), ("HEADER", "X-Mailer", "evolution"), False),
    "recipient contains": (
        HeaderTest("recipient", RECIPIENT, "contains", ("bob@example",)),
        ("OR", "TO", "bob@example", "OR", "CC", "bob@example", "BCC", "bob@example"),
        False,
    ),
    "any of several values": (subject("contains", "Rechnung", "Quote"), ("OR", "SUBJECT", "rechnung", "SUBJECT", "quote"), False),
    # "weekly" could end in "ẙ" and "report" in "ẗ", letters that casefold to y/t plus a mark
    "is": (subject("is", "Weekly report"), ("SUBJECT", "weekl"), False),
    "list_id": (
        HeaderTest("list_id", ("List-Id",), "is", ("python-dev.python.org",), list_id=True),
        ("HEADER", "List-Id", "python-dev.python.org"),
        False,
    ),
    "matches: its longest literal": (subject("matches", "*[JIRA]*release*"), ("SUBJECT", "release"), False),
    "regex: its longest required literal": (subject("regex", r"^Order \d+ shipped|delivered"), ("HEADER", "Subject", ""), False),
    "regex literal": (subject("regex", r"^\[JIRA\] release \d+"), ("SUBJECT", "release"), False),
    "white space splits the needle": (subject("contains", "Your  order"), ("SUBJECT", "order"), False),
    "parentheses never reach the wire": (subject("contains", "(no subject)"), ("SUBJECT", "ubjec"), False),
    "ß: only the header's presence": (subject("contains", "Straße"), ("HEADER", "Subject", ""), False),
    "ß case-sensitive: up to the ß, which may be a raw Latin-1 byte": (
        subject("contains", "Straße", case_sensitive=True), ("SUBJECT", "Stra"), False),
    "non-ASCII that folds alike": (subject("contains", "Заказ"), ("SUBJECT", "заказ"), False),
    "address": (sender("address", "billing@shop.example"), ("FROM", "billing@shop.example"), False),
    "domain": (sender("domain", "github.com."), ("FROM", "github.com"), False),
    "localpart": (sender("localpart", "billing"), ("FROM", "billing"), False),
    "user": (sender("user", "alice"), ("FROM", "alice"), False),
    "count: at least one needs the header": (CountTest("Received", ("Received",), "gt", 0), ("HEADER", "Received", ""), False),
    "count: none or few can't be searched": (CountTest("Received", ("Received",), "lt", 3), ("ALL",), False),
    "index: any occurrence narrows": (HeaderTest("header", ("Received",), "contains", ("mx1",), index=-1),
                                      ("HEADER", "Received", "mx1"), False),
    "detail": (sender("detail", "github"), ("FROM", "github"), False),
    "display_name": (sender("display_name", "Alice Wonderland"), ("FROM", "wonderland"), False),
    # combinators
    "all: every pushable part": (All((UNSEEN, subject("contains", "Rechnung"))), ("UNSEEN", "SUBJECT", "rechnung"), False),
    "all: exact parts stay exact": (All((UNSEEN, LABEL)), ("UNSEEN", "KEYWORD", "$Label"), True),
    "all: unpushable parts are left out": (All((UNSEEN, BODY)), ("UNSEEN",), False),
    "all: empty": (All(()), ("ALL",), True),
    "any": (Any((SEEN, FLAGGED)), ("OR", "SEEN", "FLAGGED"), True),
    "any of three": (Any((SEEN, FLAGGED, DRAFT)), ("OR", "SEEN", "OR", "FLAGGED", "DRAFT"), True),
    "any: a conjunction is parenthesised": (
        Any((All((FLAGGED, subject("contains", "Rechnung"))), SizeTest("larger", 1000))),
        ("OR", ["FLAGGED", "SUBJECT", "rechnung"], "LARGER", 1000),
        False,
    ),
    "any: an unpushable branch makes it ALL": (Any((SEEN, BODY)), ("ALL",), False),
    "any: empty matches nothing": (Any(()), ("NOT", "ALL"), True),
    "not": (Not(SEEN), ("NOT", "SEEN"), True),
    "not of a conjunction": (Not(All((SEEN, LABEL))), ("NOT", ["SEEN", "KEYWORD", "$Label"]), True),
    "not of an inexact search is ALL": (Not(subject("contains", "Rechnung")), ("ALL",), False),
}


@pytest.mark.parametrize("cond, criteria, exact", PUSHDOWN.values(), ids=PUSHDOWN.keys())
def test_pushdown(cond: Condition, criteria: tuple[object, ...], exact: bool) -> None:
    query = to_search(cond, now=NOW)
    assert query.criteria == criteria
    assert query.exact is exact


@pytest.mark.parametrize("cond, criteria, exact", PUSHDOWN.values(), ids=PUSHDOWN.keys())
def test_imapclient_can_send_every_query(cond: Condition, criteria: tuple[object, ...], exact: bool) -> None:
    query = to_search(cond, now=NOW)
    charset = "UTF-8" if query.needs_utf8 else None
    assert _normalise_search_criteria(list(query.criteria), charset)
    # imapclient encodes parenthesised groups as ASCII (and would put ")" inside a literal)
    assert all(str(token).isascii() for token in query.criteria if isinstance(token, list) for token in token)


def test_an_exact_query_leaves_nothing_to_check_locally() -> None:
    assert to_search(All((UNSEEN, LABEL))).residual is None


def test_the_residual_of_a_conjunction_is_its_inexact_parts() -> None:
    rechnung = subject("contains", "Rechnung")
    assert to_search(All((UNSEEN, rechnung))).residual == rechnung
    assert to_search(All((UNSEEN, rechnung, BODY))).residual == All((rechnung, BODY))


def test_an_inexact_any_is_checked_whole() -> None:
    cond = Any((SEEN, subject("contains", "Rechnung")))
    assert to_search(cond).residual == cond


def test_what_is_not_pushed_says_why() -> None:
    notes = to_search(All((BODY, AttachmentTest(True), AgeTest("older_than", 86400)))).notes
    assert [note.split(":")[0] for note in notes] == ["body", "has_attachment", "older_than"]


def test_a_flag_an_earlier_rule_changes_stays_local() -> None:
    query = to_search(All((UNSEEN, LABEL)), volatile_flags=frozenset({"\\seen"}))
    assert query.criteria == ("KEYWORD", "$Label")
    assert not query.exact
    assert query.residual == UNSEEN
    assert "earlier rule" in query.notes[0]


def test_ages_need_a_clock() -> None:
    query = to_search(AgeTest("older_than", 86400))
    assert query.criteria == ("ALL",)
    assert not query.exact


def test_the_clock_must_carry_a_zone() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        to_search(SEEN, now=datetime(2026, 1, 1))


def test_header_text_can_be_kept_off_the_server() -> None:
    query = to_search(All((UNSEEN, HeaderTest("recipient", RECIPIENT, "contains", ("bob@example",)))), header_strings=False)
    assert query.criteria == ("UNSEEN", "OR", "HEADER", "To", "", "OR", "HEADER", "Cc", "", "HEADER", "Bcc", "")
    assert not query.exact


def test_non_ascii_needles_need_utf8() -> None:
    assert to_search(subject("contains", "Заказ")).needs_utf8
    assert not to_search(subject("contains", "Rechnung")).needs_utf8


def test_non_ascii_text_inside_parentheses_is_left_out() -> None:
    query = to_search(Any((All((FLAGGED, subject("contains", "Заказ"))), SEEN)))
    assert query.criteria == ("OR", "FLAGGED", "SEEN")
    assert not query.exact


# ---------------------------------------------------------------- servers without CHARSET UTF-8


def test_ascii_fallback_drops_non_ascii_from_a_conjunction() -> None:
    fallback = ascii_fallback(to_search(All((UNSEEN, subject("contains", "Заказ")))))
    assert fallback.criteria == ("UNSEEN",)
    assert not fallback.needs_utf8
    assert "CHARSET" in fallback.notes[-1]


def test_ascii_fallback_widens_an_or_to_everything() -> None:
    query = to_search(Any((subject("contains", "Заказ"), SEEN)))
    assert ascii_fallback(query).criteria == ("ALL",)


def test_ascii_fallback_keeps_ascii_queries() -> None:
    query = to_search(All((UNSEEN, subject("contains", "Rechnung"))))
    assert ascii_fallback(query) is query


def test_ascii_fallback_keeps_exactness() -> None:
    query = to_search(Not(All((SEEN, LABEL))))
    assert ascii_fallback(query) == query


# ---------------------------------------------------------------- what a server is sure to find

FRAGMENTS = {
    "plain": ("GitHub", False, False, "github"),
    "the longest word": ("Your order has been dispatched", False, False, "dispatched"),
    "address syntax splits": ('"Doe, John" <john.doe@example.com>', False, True, "john.doe@example.com"),
    "subject keeps brackets": ("[JIRA-1234]", False, False, "[jira-1234]"),
    "ß folds to ss, servers keep it": ("Straße", False, False, None),
    "a ligature could supply 'fi', 'ß' the final 's'": ("notifications", False, False, "cation"),
    "a trailing accent may be reordered": ("Poznań", False, False, "pozn"),
    "Latin-1 letters may be raw bytes a server reads as U+FFFD": ("Résumé", True, False, "sum"),
    "so may the Latin-1 micro sign, which folds to Greek μ": ("Καλημέρα", False, False, "καλ"),
    "case-sensitive keeps case, not Latin-1": ("Straßenbahn", True, False, "enbahn"),
    "case-sensitive keeps its case": ("ACME Corp", True, False, "ACME"),
    "Cyrillic": ("Счёт на оплату", False, False, "оплату"),
    "Greek": ("Ευχαριστώ", False, False, "ευχαριστ"),
    "Georgian capitals came late to Unicode": ("საქართველო", False, False, None),
    "too short": ("PR", False, False, None),
}


@pytest.mark.parametrize("needle, case_sensitive, address_like, fragment", FRAGMENTS.values(), ids=FRAGMENTS.keys())
def test_server_fragment(needle: str, case_sensitive: bool, address_like: bool, fragment: str | None) -> None:
    assert server_fragment([needle], case_sensitive=case_sensitive, address_like=address_like) == fragment


@given(st.text(), st.booleans(), st.booleans())
def test_a_fragment_is_part_of_what_the_rule_compares(needle: str, case_sensitive: bool, address_like: bool) -> None:
    fragment = server_fragment([needle], case_sensitive=case_sensitive, address_like=address_like)
    if fragment is not None:
        assert fragment in (needle if case_sensitive else needle.casefold())
        assert len(fragment) >= MIN_FRAGMENT
        assert not any(c in fragment for c in '(){}%*"\\\r\n\t\x00')


def test_glob_literals() -> None:
    assert glob_literals(r"*[PATCH*v\*2?x") == ["[PATCH", "v*2", "x"]
    assert glob_literals("*") == []


def test_regex_literals_only_count_what_every_match_contains() -> None:
    assert regex_literals(r"^Invoice \d+ (paid|due)? now") == (["Invoice ", " ", " now"], False)
    assert regex_literals(r"(?i)abc|abd") == (["ab"], True)  # re factors the common prefix out
    assert regex_literals(r"colou?r") == (["colo", "r"], False)
    assert regex_literals(r"[") == ([], False)


# ---------------------------------------------------------------- rule order


def test_volatile_flags_are_those_earlier_rules_change() -> None:
    rules = [
        Rule("mark", SEEN, (AddFlags(("\\Seen", "$Done")),)),
        Rule("unmark", SEEN, (RemoveFlags(("\\Flagged",)), Copy("Archive"))),
        Rule("answer", SEEN, (Reply(body="x"),)),
        Rule("drop", SEEN, (Delete(),)),
        Rule("last", SEEN, (Move("X"),)),
    ]
    assert volatile_flags_before(rules) == [
        frozenset(),
        frozenset({"\\seen", "$done"}),
        frozenset({"\\seen", "$done", "\\flagged"}),
        frozenset({"\\seen", "$done", "\\flagged", "\\answered"}),
        frozenset({"\\seen", "$done", "\\flagged", "\\answered", "\\deleted"}),
    ]


# ---------------------------------------------------------------- what the local check reads

NEEDS = {
    "header": (subject("contains", "x"), FetchNeeds(headers=frozenset({"subject"}))),
    "recipient": (HeaderTest("recipient", RECIPIENT, "contains", ("x",)), FetchNeeds(headers=frozenset({"to", "cc", "bcc"}))),
    "list_id": (HeaderTest("list_id", ("List-Id",), "is", ("x",), list_id=True), FetchNeeds(headers=frozenset({"list-id"}))),
    "address": (sender("domain", "x.example"), FetchNeeds(headers=frozenset({"from"}))),
    "exists": (HeaderExists("header", ("X-Spam-Flag",), True), FetchNeeds(headers=frozenset({"x-spam-flag"}))),
    "body": (BODY, FetchNeeds(body=True)),
    "text": (BodyTest("text", "contains", ("x",)), FetchNeeds(body=True, all_headers=True)),
    "has_attachment": (AttachmentTest(True), FetchNeeds(structure=True)),
    "sent date": (DateTest("sent", "before", date(2025, 1, 1)), FetchNeeds(headers=frozenset({"date"}))),
    "arrival date": (DateTest("arrival", "before", date(2025, 1, 1)), FetchNeeds()),
    "size, age, flags": (All((SizeTest("larger", 1), AgeTest("older_than", 1), SEEN)), FetchNeeds()),
    "combinators": (
        Any((Not(subject("contains", "x")), All((BODY, sender("contains", "y"))))),
        FetchNeeds(headers=frozenset({"subject", "from"}), body=True),
    ),
}


@pytest.mark.parametrize("cond, needs", NEEDS.values(), ids=NEEDS.keys())
def test_fetch_needs(cond: Condition, needs: FetchNeeds) -> None:
    assert fetch_needs(cond) == needs


def test_replies_read_all_headers_and_the_body() -> None:
    assert reply_fetch_needs() == FetchNeeds(all_headers=True, body=True)


# ---------------------------------------------------------------- compile --to imap


def test_render_imap_shows_the_search_and_what_stays_local() -> None:
    rule = Rule("r", All((UNSEEN, subject("contains", "Заказ", "Rechnung"), BODY)), ())
    assert render_imap(rule).splitlines() == [
        'UID SEARCH CHARSET UTF-8 UNSEEN OR SUBJECT "заказ" SUBJECT rechnung',
        "checked locally: all(subject contains 'Заказ' or 'Rechnung', body contains 'unsubscribe')",
        "note: body: BODY/TEXT search sees raw HTML, where markup can split the text",
    ]


def test_render_imap_quotes_strings_and_writes_days_and_groups() -> None:
    rule = Rule("r", Any((All((FLAGGED, subject("contains", "Weekly report"))), DateTest("arrival", "since", date(2025, 1, 3)))), ())
    assert render_imap(rule).splitlines()[0] == "UID SEARCH OR (FLAGGED SUBJECT weekl) SINCE 01-Jan-2025"


def test_render_imap_of_an_exact_rule() -> None:
    assert render_imap(Rule("r", HeaderExists("header", ("X-Spam-Flag",), True), ())).splitlines() == [
        'UID SEARCH HEADER X-Spam-Flag ""',
        "exact: the server's answer is final",
    ]


def test_describe_reads_like_the_rule_file() -> None:
    cond = All((Not(LABEL), AgeTest("older_than", 30 * 86400), subject("is", "x", case_sensitive=True)))
    assert describe(cond) == "all(not $Label, older_than 30d, subject is 'x' (case-sensitive))"


def test_no_character_above_the_scanned_range_changes_under_casefold() -> None:
    from mailrules.search import CASED_LIMIT

    assert all(chr(code).casefold() == chr(code) for code in range(CASED_LIMIT, 0x110000))
