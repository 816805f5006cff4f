"""The exact meaning of every condition key and operator (spec §2 and §7)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from freezegun import freeze_time

from mailrules import model
from mailrules.match import EvalContext, Trace, casefold_regex, explain, glob_match, glob_tokens, matches
from mailrules.message import MessageView, NotFetched
from mailrules.parse import parse_condition
from mailrules.model import (
    AddressTest,
    AgeTest,
    All,
    AttachmentTest,
    BodyTest,
    DateTest,
    FlagTest,
    HeaderExists,
    HeaderTest,
    Not,
    SizeTest,
)
from mailrules.model import SYSTEM_FLAGS

FIXTURES = Path(__file__).parent.parent / "fixtures"
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
CTX = EvalContext(now=NOW)


def fixture(name: str, **kwargs: object) -> MessageView:
    return MessageView.from_bytes((FIXTURES / name).read_bytes(), **kwargs)  # type: ignore[arg-type]


def message(header: str, body: str = "", **kwargs: object) -> MessageView:
    raw = (header.strip("\n") + "\n\n" + body).replace("\n", "\r\n").encode("utf-8")
    return MessageView.from_bytes(raw, **kwargs)  # type: ignore[arg-type]


def names_of(names: str | tuple[str, ...]) -> tuple[str, ...]:
    return (names,) if isinstance(names, str) else names


def header(names: str | tuple[str, ...], operator: str, *values: str, case_sensitive: bool = False) -> HeaderTest:
    return HeaderTest("header", names_of(names), operator, values, case_sensitive)  # type: ignore[arg-type]


def list_id(operator: str, *values: str) -> HeaderTest:
    return HeaderTest("list_id", ("List-Id",), operator, values, list_id=True)  # type: ignore[arg-type]


def address(names: str | tuple[str, ...], operator: str, *values: str, case_sensitive: bool = False) -> AddressTest:
    return AddressTest("header", names_of(names), operator, values, case_sensitive)  # type: ignore[arg-type]


def holds(cond: model.Condition, msg: MessageView, ctx: EvalContext = CTX) -> bool:
    """``matches``, checked against ``explain`` so the two can never disagree."""
    result = matches(cond, msg, ctx)
    assert explain(cond, msg, ctx).result is result
    return result


# ---------------------------------------------------------------- string operators on header values

GRUSSE = fixture("grusse-utf8-headers.eml")  # Subject: GRÜSSE aus der Straße
GITHUB = fixture("github-notification.eml")


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        (header("Subject", "contains", "aus der"), True),
        (header("Subject", "contains", "AUS DER"), True),
        (header("Subject", "contains", "grüße"), True),  # ß casefolds to ss, so it equals SS
        (header("Subject", "contains", "strasse"), True),
        (header("Subject", "contains", "Straße", case_sensitive=True), True),
        (header("Subject", "contains", "STRASSE", case_sensitive=True), False),
        (header("Subject", "contains", ""), True),  # the empty string is in every present value
        (header("Subject", "contains", "Köln"), False),
        (header("Subject", "contains", "nope", "der Str"), True),  # a list means any of them
        (header("Subject", "is", "grüsse AUS der strasse"), True),
        (header("Subject", "is", "GRÜSSE aus der"), False),
        (header("Subject", "is", "GRÜSSE aus der Straße", case_sensitive=True), True),
        (header("Subject", "is", "grüsse aus der straße", case_sensitive=True), False),
        (header("Subject", "matches", "grüße*"), True),
        (header("Subject", "matches", "*der stra?se"), True),
        (header("Subject", "matches", "aus*"), False),  # matches is anchored at both ends
        (header("Subject", "matches", "*"), True),
        (header("Subject", "matches", "GRÜSSE*", case_sensitive=True), True),
        (header("Subject", "matches", "grüsse*", case_sensitive=True), False),
        (header("Subject", "regex", r"aus\s+der"), True),  # searched, not anchored
        (header("Subject", "regex", r"^aus"), False),
        (header("Subject", "regex", "Stra.e"), True),  # IGNORECASE on the value as written
        (header("Subject", "regex", "STRASSE$"), True),  # and on the casefolded value: ß equals SS
        (header("Subject", "regex", r"^\S+ AUS"), True),  # escapes are not casefolded
        (header("Subject", "regex", "straße", case_sensitive=True), False),
        (header("Subject", "regex", "Straße", case_sensitive=True), True),
    ],
)
def test_string_operators_on_a_non_ascii_subject(cond: HeaderTest, expected: bool) -> None:
    assert holds(cond, GRUSSE) is expected


@pytest.mark.parametrize(
    ("glob", "value", "expected"),
    [
        ("*widgets*", "Re: [octo-org/widgets] Crash", True),
        ("Re: [*] Crash", "Re: [octo-org/widgets] Crash", True),  # brackets are literal
        (r"5 \* 3", "5 * 3", True),
        (r"5 \* 3", "5 x 3", False),
        (r"what\?", "what?", True),
        (r"what\?", "whatX", False),
        ("what?", "whatX", True),
        ("what?", "what", False),  # ? is exactly one character
        (r"back\\slash", "back\\slash", True),
        ("a*b*c", "a-x-b-y-c", True),
        ("a.c", "abc", False),  # regex characters mean themselves
        ("", "", True),
        ("", "x", False),
    ],
)
def test_matches_uses_sieve_wildcards(glob: str, value: str, expected: bool) -> None:
    msg = message(f"X-Test: {value}")
    assert holds(header("X-Test", "matches", glob), msg) is expected


@pytest.mark.parametrize("glob, text, expected", [
    ("*", "", True), ("*", "anything", True), ("", "", True), ("", "x", False),
    ("a*b?c", "aXXbYc", True), ("a*b?c", "abc", False), ("*.pdf", "x.pdf.exe", False),
    (r"a\*b", "a*b", True), (r"a\*b", "axb", False), (r"what\?", "what?", True), (r"what\?", "whatx", False),
    ("*a*a*a*a*a*b", "a" * 3000, False), ("*a*a*a*a*a*b", "a" * 3000 + "b", True),
    ("?", "ab", False), ("**", "ab", True), ("a*", "a", True), ("*a", "ba", True), ("*a", "ab", False),
])
def test_globs_match_the_whole_value_like_sieve_matches(glob: str, text: str, expected: bool) -> None:
    assert glob_match(glob_tokens(glob), text) is expected


def test_a_glob_against_a_regex_reference() -> None:
    import itertools
    import re

    for glob in ("a*b", "*?a*", "?*?", "a**a", "*ab*ba*"):
        pattern = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob), re.DOTALL)
        for length in range(6):
            for text in map("".join, itertools.product("ab", repeat=length)):
                assert glob_match(glob_tokens(glob), text) is (pattern.fullmatch(text) is not None), (glob, text)


def test_casefold_regex_leaves_escapes_and_named_characters_alone() -> None:
    assert casefold_regex(r"ÄB\S\N{LATIN SMALL LETTER A}ß") == r"äb\S\N{LATIN SMALL LETTER A}ss"


def test_a_regex_that_only_compiles_before_casefolding_still_matches() -> None:
    msg = message("X-Test: value [")
    assert holds(header("X-Test", "regex", "[Z-a]"), msg) is True  # [z-a] would be an invalid range


def test_an_invalid_regex_never_matches_and_never_raises() -> None:
    assert holds(header("Subject", "regex", "(unclosed"), GRUSSE) is False


# ---------------------------------------------------------------- which values are tested


@pytest.mark.parametrize("operator", ["contains", "is", "matches", "regex"])
def test_an_absent_header_matches_no_string_operator_even_with_an_empty_pattern(operator: str) -> None:
    pattern = "*" if operator == "matches" else ""
    assert holds(header("X-Absent", operator, pattern), GITHUB) is False


@pytest.mark.parametrize(
    ("name", "present", "expected"),
    [
        ("X-GitHub-Reason", True, True),
        ("X-Absent", True, False),
        ("X-Absent", False, True),
        ("X-GitHub-Reason", False, False),
    ],
)
def test_exists_tests_presence(name: str, present: bool, expected: bool) -> None:
    assert holds(HeaderExists("header", (name,), present), GITHUB) is expected


def test_an_empty_header_exists_and_equals_the_empty_string() -> None:
    msg = fixture("empty-headers.eml")
    assert holds(HeaderExists("subject", ("Subject",), True), msg)
    assert holds(header("Subject", "is", ""), msg)
    assert not holds(header("Subject", "is", "x"), msg)


def test_every_occurrence_of_a_header_is_tested() -> None:
    msg = fixture("spam-flagged.eml")
    assert holds(header("X-Label", "is", "second"), msg)


def test_recipient_reads_to_cc_and_bcc() -> None:
    recipient = ("To", "Cc", "Bcc")
    assert holds(header(recipient, "contains", "alice@example.org"), fixture("undisclosed-recipients.eml"))
    assert holds(header(recipient, "contains", "mention@noreply"), GITHUB)


def test_encoded_words_are_tested_decoded() -> None:
    msg = fixture("encoded-words.eml")
    assert holds(header("Subject", "contains", "grüsse aus köln"), msg)
    assert not holds(header("Subject", "contains", "=?UTF-8?B?"), msg)


def test_an_undecodable_header_is_tested_in_its_raw_form() -> None:
    msg = fixture("bad-charset.eml")
    assert holds(header("Subject", "contains", "=?x-bogus?Q?Rechnung_offen?="), msg)


def test_raw_8bit_latin1_headers_are_tested_as_text() -> None:
    assert holds(header("Subject", "contains", "GRÜSSE"), fixture("raw-8bit-latin1.eml"))


def test_a_comment_is_part_of_the_tested_value() -> None:
    assert holds(header("From", "contains", "(Mail Delivery System)"), fixture("bounce.eml"))


# ---------------------------------------------------------------- list_id


PYTHON_DEV = fixture("python-dev.eml")


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        (list_id("is", "python-dev.python.org"), True),
        (list_id("is", "Python core developers <python-dev.python.org>"), False),
        (list_id("contains", "core developers"), False),  # the phrase is not the identifier
        (list_id("matches", "*.python.org"), True),
        (list_id("regex", r"^python-dev\."), True),
        (header("List-Id", "contains", "core developers"), True),  # header: {name: List-Id} is the whole value
    ],
)
def test_list_id_tests_the_identifier_inside_angle_brackets(cond: HeaderTest, expected: bool) -> None:
    assert holds(cond, PYTHON_DEV) is expected


def test_list_id_without_angle_brackets_is_the_whole_value() -> None:
    assert holds(list_id("is", "announce.example.org"), message("List-Id: announce.example.org"))


def test_list_id_of_a_message_without_one_matches_nothing() -> None:
    assert not holds(list_id("contains", ""), fixture("auto-reply.eml"))


# ---------------------------------------------------------------- address operators


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        (address("From", "address", "notifications@github.com"), True),
        (address("From", "address", "Notifications@GitHub.com"), True),
        (address("From", "address", "Notifications@GitHub.com", case_sensitive=True), False),
        (address("From", "address", "github.com"), False),
        (address("From", "domain", "github.com"), True),
        (address("From", "domain", "GITHUB.COM"), True),
        (address("From", "domain", "hub.com"), False),  # a suffix is not a parent domain
        (address("From", "domain", "com"), True),
        (address("Reply-To", "domain", "github.com"), True),  # reply.github.com is a subdomain
        (address("From", "localpart", "notifications"), True),
        (address("From", "localpart", "notif"), False),
        (address("From", "display_name", "mona"), True),
        (address("From", "display_name", "Mona Lisa", case_sensitive=True), True),
        (address("From", "display_name", "mona", case_sensitive=True), False),
        (address(("To", "Cc", "Bcc"), "address", "alice@example.org"), True),
        (address("Delivered-To", "address", "alice@example.org"), True),  # any header by name
        (address("Return-Path", "domain", "github.com"), True),
        (address("X-Absent", "domain", "github.com"), False),
    ],
)
def test_address_operators_on_a_github_notification(cond: AddressTest, expected: bool) -> None:
    assert holds(cond, GITHUB) is expected


@pytest.mark.parametrize(
    ("domain", "wanted", "expected"),
    [
        ("github.com", "github.com", True),
        ("a.github.com", "github.com", True),
        ("a.b.github.com", "github.com", True),
        ("evilgithub.com", "github.com", False),
        ("github.com.evil.example", "github.com", False),
        ("github.com.", "github.com", True),  # a fully qualified name with its root dot
    ],
)
def test_domain_means_equal_or_a_subdomain_never_a_look_alike(domain: str, wanted: str, expected: bool) -> None:
    msg = message(f"From: someone@{domain}")
    assert holds(address("From", "domain", wanted), msg) is expected


def test_a_comment_is_not_a_display_name() -> None:
    msg = fixture("bounce.eml")
    assert not holds(address("From", "display_name", "Mail Delivery"), msg)
    assert holds(address("From", "localpart", "mailer-daemon"), msg)


@pytest.mark.parametrize(
    ("field", "cond", "expected"),
    [
        ("From: stephan@", address("From", "localpart", "stephan"), False),
        ("From: stephan@", address("From", "domain", ""), False),
        ("From: stephan@", address("From", "address", "stephan@"), True),  # the whole text is still there
        ("To: @example.org", address("To", "localpart", ""), False),
        ("To: @example.org", address("To", "domain", "example.org"), False),
        ("To: <@example.org>", address("To", "domain", "example.org"), False),
        ("Cc: MAILER-DAEMON", address("Cc", "localpart", "mailer-daemon"), False),
        ("Cc: MAILER-DAEMON", address("Cc", "address", "mailer-daemon"), True),
        ("Cc: MAILER-DAEMON, bob@example.org", address("Cc", "localpart", "bob"), True),
    ],
)
def test_an_invalid_address_has_no_local_part_or_domain(field: str, cond: AddressTest, expected: bool) -> None:
    """RFC 5228 §2.7.4: a syntactically invalid address never matches :localpart or :domain."""
    assert holds(cond, message(field)) is expected


@pytest.mark.parametrize(
    ("field", "cond", "expected"),
    [
        ("To: alice+github@example.org", address("To", "user", "alice"), True),
        ("To: alice+github@example.org", address("To", "detail", "github"), True),
        ("To: alice+github@example.org", address("To", "detail", "GitHub"), True),
        ("To: alice+github@example.org", address("To", "detail", "GitHub", case_sensitive=True), False),
        ("To: alice+github@example.org", address("To", "user", "alice+github"), False),
        ("To: alice+github+ci@example.org", address("To", "detail", "github+ci"), True),  # the first separator splits
        ("To: alice@example.org", address("To", "user", "alice"), True),
        ("To: alice@example.org", address("To", "detail", ""), False),  # no separator, no detail
        ("To: alice+@example.org", address("To", "detail", ""), True),  # an empty detail is a detail
        ("To: +github@example.org", address("To", "user", ""), True),
        ("To: alice+github@", address("To", "detail", "github"), False),  # an invalid address has no parts
        ("To: Bob <bob@x.org>, alice+lists@example.org", address("To", "detail", "lists"), True),
    ],
)
def test_subaddress_user_and_detail_follow_rfc_5233(field: str, cond: AddressTest, expected: bool) -> None:
    assert holds(cond, message(field)) is expected


def test_the_subaddress_separator_is_a_set_of_characters() -> None:
    ctx = EvalContext(now=NOW, subaddress_separator="-+")
    msg = message("To: alice-github@example.org")
    assert holds(address("To", "detail", "github"), msg, ctx)
    assert not holds(address("To", "detail", "github"), msg)
    assert holds(address("To", "user", "alice-github"), msg)


def test_explain_shows_the_user_and_detail_it_compared() -> None:
    msg = message("To: alice+github@example.org, bob@example.org")
    assert explain(address("To", "detail", "github"), msg, CTX).detail == 'To: detail "github" is "github"'
    assert "no detail matches" in explain(address("To", "detail", "gitlab"), msg, CTX).detail
    assert "no address has a detail" in explain(address("To", "detail", "x"), message("To: bob@example.org"), CTX).detail


def test_a_quoted_display_name_with_a_comma_is_one_address() -> None:
    msg = fixture("quoted-comma.eml")
    assert holds(address("From", "display_name", "doe, john"), msg)
    assert holds(address("From", "address", "john.doe@example.com"), msg)


def test_encoded_display_names_are_decoded() -> None:
    assert holds(address("To", "display_name", "müller, hans"), fixture("encoded-words.eml"))


def test_undisclosed_recipients_has_no_address_to_match() -> None:
    msg = fixture("undisclosed-recipients.eml")
    assert not holds(address("To", "localpart", "undisclosed-recipients"), msg)
    assert not holds(address("To", "display_name", ""), msg)
    assert holds(header("To", "contains", "undisclosed"), msg)  # the value is still there


def test_group_members_are_addresses() -> None:
    msg = fixture("group-syntax.eml")
    assert holds(address("To", "address", "bob@example.org"), msg)
    assert not holds(address("To", "localpart", "team"), msg)


def test_an_empty_return_path_has_no_address() -> None:
    assert not holds(address("Return-Path", "localpart", ""), fixture("bounce.eml"))


# ---------------------------------------------------------------- body and text


@pytest.mark.parametrize(
    ("name", "cond", "expected"),
    [
        ("html-only.eml", BodyTest("body", "contains", ("café & crème",)), True),
        ("html-only.eml", BodyTest("body", "contains", ("secret-tracker",)), False),  # script content is not visible
        ("html-only.eml", BodyTest("body", "contains", ("<div>",)), False),
        ("html-only.eml", BodyTest("body", "contains", ("ENDS TONIGHT",)), True),
        ("html-only.eml", BodyTest("body", "contains", ("ENDS TONIGHT",), case_sensitive=True), False),
        ("alternative-qp.eml", BodyTest("body", "contains", ("strasse ist wieder offen, der",)), True),
        ("qp-base64-body.eml", BodyTest("body", "contains", ("anticonstitutionnellement",)), True),
        ("qp-base64-body.eml", BodyTest("body", "contains", ("FENÊTRE",)), True),  # base64 latin-1 part
        ("qp-base64-body.eml", BodyTest("body", "regex", (r"^dessert follows\.$",)), True),  # MULTILINE
        ("qp-base64-body.eml", BodyTest("body", "regex", (r"\Adessert",)), False),
        ("bounce.eml", BodyTest("body", "contains", ("unique-original-phrase",)), False),
        ("invoice-pdf.eml", BodyTest("body", "contains", ("Subject: Invoice",)), False),
        ("invoice-pdf.eml", BodyTest("text", "contains", ("subject: invoice 2026",)), True),
        ("invoice-pdf.eml", BodyTest("text", "contains", ("amount due",)), True),
        ("invoice-pdf.eml", BodyTest("text", "regex", (r"^From: .*ACME",)), True),
    ],
)
def test_body_and_text(name: str, cond: BodyTest, expected: bool) -> None:
    assert holds(cond, fixture(name)) is expected


MIME_PART = (
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n",
    "--b\nContent-Type: text/plain\n\nplain words\n--b\nContent-Type: text/plain\n"
    "Content-Transfer-Encoding: {encoding}\n\nsecret words\n--b--\n",
)


@pytest.mark.parametrize(("encoding", "searched"), [("x-uuencode", False), ("x-rot13", False), ("8bit", True),
                                                     ("Quoted-Printable", True), ("", True)])
def test_a_part_with_an_unknown_transfer_encoding_is_not_text(encoding: str, searched: bool) -> None:
    """RFC 2045 §6.4: such a part is application/octet-stream; Pigeonhole does not search it either."""
    head, body = MIME_PART
    body = body.format(encoding=encoding) if encoding else body.replace("Content-Transfer-Encoding: {encoding}\n", "")
    msg = message("Subject: x\n" + head, body)
    assert holds(BodyTest("body", "contains", ("secret words",)), msg) is searched
    assert holds(BodyTest("body", "contains", ("plain words",)), msg)
    assert any("Content-Transfer-Encoding" in warning for warning in msg.warnings) is not searched


def test_a_named_text_part_with_an_unknown_encoding_is_an_attachment() -> None:
    msg = message("Subject: x\nContent-Type: text/plain; name=a.txt\nContent-Transfer-Encoding: x-uue", "begin 644")
    assert holds(AttachmentTest(True), msg)


def test_a_message_that_ends_after_its_header_has_no_body_to_match() -> None:
    """RFC 5173 §5: every body test is false, even one for the empty text; an empty body is still a body."""
    header_only = MessageView.from_bytes(b"From: a@example.org\r\nSubject: x\r\n")
    assert not holds(BodyTest("body", "contains", ("",)), header_only)
    assert holds(Not(BodyTest("body", "regex", ("x",))), header_only)
    assert "no body" in explain(BodyTest("body", "contains", ("",)), header_only, CTX).detail
    assert holds(BodyTest("body", "contains", ("",)), message("Subject: x", ""))


@pytest.mark.parametrize("content_type", ["/plain", "text/", "garbage", "text/pl@in"])
def test_an_invalid_content_type_is_read_as_plain_text(content_type: str) -> None:
    """RFC 2045 §5.2: a syntactically invalid Content-Type means text/plain."""
    msg = message(f"Subject: x\nMIME-Version: 1.0\nContent-Type: {content_type}", "<p>the words</p>")
    assert holds(BodyTest("body", "contains", ("<p>the words</p>",)), msg)
    assert not msg.warnings


def test_application_xhtml_is_read_as_html() -> None:
    msg = message("Subject: x\nContent-Type: application/xhtml+xml", "<html><body><p>caf&eacute; open</p></body></html>")
    assert holds(BodyTest("body", "contains", ("café open",)), msg)
    assert not holds(BodyTest("body", "contains", ("<p>",)), msg)


REUSED_BOUNDARY = (
    'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="same"\n',
    '--same\nContent-Type: multipart/alternative; boundary="same"\n\n--same\nContent-Type: text/plain\n\n'
    'hello there\n--same\nContent-Type: text/html\n\n<p>hello html</p>\n--same--\n\n--same\n'
    'Content-Type: text/plain; name="notes.txt"\nContent-Disposition: attachment; filename="notes.txt"\n\n'
    'attached words\n--same\nContent-Type: text/plain\n\nclosing words\n--same--\n',
)


def test_an_inner_multipart_reusing_the_outer_boundary_is_read_as_pigeonhole_reads_it() -> None:
    """Each delimiter line belongs to the innermost multipart it fits: the outer one goes on after the inner close."""
    msg = message("Subject: x\n" + REUSED_BOUNDARY[0], REUSED_BOUNDARY[1])
    assert holds(AttachmentTest(True), msg)
    assert holds(BodyTest("body", "contains", ("hello html",)), msg)
    assert holds(BodyTest("body", "contains", ("closing words",)), msg)
    assert not holds(BodyTest("body", "contains", ("attached words",)), msg)
    assert any("reuses" in warning for warning in msg.warnings)


def test_a_body_test_on_a_header_only_view_asks_for_the_body() -> None:
    msg = MessageView.from_parts(header=b"Subject: x\r\n\r\n", size=10, internaldate=None, flags=())
    with pytest.raises(NotFetched):
        matches(BodyTest("body", "contains", ("x",)), msg, CTX)


# ---------------------------------------------------------------- size


@pytest.mark.parametrize(
    ("operator", "limit", "expected"),
    [("larger", 999, True), ("larger", 1000, False), ("smaller", 1000, False), ("smaller", 1001, True)],
)
def test_size_comparisons_are_strict(operator: str, limit: int, expected: bool) -> None:
    msg = MessageView.from_parts(header=b"", size=1000, internaldate=None, flags=())
    assert holds(SizeTest(operator, limit), msg) is expected  # type: ignore[arg-type]


def test_size_of_an_lf_file_is_its_crlf_size() -> None:
    msg = fixture("lf-only.eml")
    raw = (FIXTURES / "lf-only.eml").read_bytes()
    assert holds(SizeTest("larger", len(raw)), msg)  # one extra CR per line
    assert holds(SizeTest("smaller", len(raw) + raw.count(b"\n") + 1), msg)


# ---------------------------------------------------------------- arrival age and dates

DAY = 86400


@pytest.mark.parametrize(
    ("ago", "operator", "seconds", "expected"),
    [
        (timedelta(days=30, seconds=1), "older_than", 30 * DAY, True),
        (timedelta(days=30), "older_than", 30 * DAY, False),  # exactly 30 days is not more than 30 days
        (timedelta(days=29, hours=23), "older_than", 30 * DAY, False),
        (timedelta(hours=11), "newer_than", 12 * 3600, True),
        (timedelta(hours=12), "newer_than", 12 * 3600, False),
        (timedelta(hours=13), "newer_than", 12 * 3600, False),
    ],
)
def test_age_is_exact_relative_to_now(ago: timedelta, operator: str, seconds: int, expected: bool) -> None:
    msg = message("Subject: x", internaldate=NOW - ago)
    assert holds(AgeTest(operator, seconds), msg) is expected  # type: ignore[arg-type]


def test_age_uses_the_clock_when_no_now_is_given() -> None:
    msg = message("Subject: x", internaldate=datetime(2026, 11, 1, tzinfo=timezone.utc))
    with freeze_time("2026-11-20T10:00:00Z"):
        assert holds(AgeTest("older_than", 7 * DAY), msg, EvalContext())
    with freeze_time("2026-11-03T10:00:00Z"):
        assert not holds(AgeTest("older_than", 7 * DAY), msg, EvalContext())


def test_an_unknown_arrival_time_is_neither_old_nor_new_nor_on_any_day() -> None:
    msg = fixture("missing-date-from.eml")
    conditions: list[model.Condition] = [
        AgeTest("older_than", 0),
        AgeTest("newer_than", 10**9),
        DateTest("arrival", "before", date(9999, 1, 1)),
        DateTest("arrival", "since", date(1970, 1, 1)),
    ]
    for cond in conditions:
        assert not holds(cond, msg)


@pytest.mark.parametrize(
    ("operator", "day", "expected"),
    [
        ("since", date(2026, 11, 14), True),  # 00:30 +0100 is the 14th in its own zone (the 13th in UTC)
        ("before", date(2026, 11, 14), False),
        ("before", date(2026, 11, 15), True),
        ("since", date(2026, 11, 15), False),
    ],
)
def test_arrival_days_use_the_timestamps_own_zone(operator: str, day: date, expected: bool) -> None:
    cond = DateTest("arrival", operator, day)  # type: ignore[arg-type]
    assert holds(cond, fixture("received-chain.eml")) is expected


@pytest.mark.parametrize(
    ("operator", "day", "expected"),
    [
        ("sent_before", date(2026, 11, 17), True),  # 23:30 -0500 on the 16th, already the 17th in UTC
        ("sent_since", date(2026, 11, 17), False),
        ("sent_since", date(2026, 11, 16), True),
        ("sent_before", date(2026, 11, 16), False),
    ],
)
def test_sent_days_use_the_date_headers_own_zone(operator: str, day: date, expected: bool) -> None:
    msg = message("Date: Mon, 16 Nov 2026 23:30:00 -0500", internaldate=NOW)
    cond = DateTest("sent", operator.removeprefix("sent_"), day)  # type: ignore[arg-type]
    assert holds(cond, msg) is expected


@pytest.mark.parametrize("name", ["empty-headers.eml", "missing-date-from.eml"])
@pytest.mark.parametrize("operator", ["before", "since"])
def test_an_unreadable_or_absent_date_header_matches_no_sent_test(name: str, operator: str) -> None:
    for day in (date(1970, 1, 1), date(9999, 1, 1)):
        assert not holds(DateTest("sent", operator, day), fixture(name))  # type: ignore[arg-type]


# ---------------------------------------------------------------- flags and structure

EVERY_SYSTEM_FLAG = All(tuple(FlagTest(flag, True) for flag in SYSTEM_FLAGS.values()))


@pytest.mark.parametrize(
    ("flags", "cond", "expected"),
    [
        (["\\Seen"], FlagTest("\\Seen", True), True),
        (["seen"], FlagTest("\\Seen", True), True),
        (["\\SEEN"], FlagTest("\\Seen", True), True),
        ([], FlagTest("\\Seen", True), False),
        ([], FlagTest("\\Seen", False), True),
        (["\\Seen"], FlagTest("\\Seen", False), False),
        (["$invoice"], FlagTest("$Invoice", True), True),  # keywords compare case-insensitively
        (["$Invoice"], FlagTest("$Other", True), False),
        (["flagged", "answered", "draft", "deleted", "seen"], EVERY_SYSTEM_FLAG, True),
        (["flagged", "answered", "draft", "deleted"], EVERY_SYSTEM_FLAG, False),
    ],
)
def test_flag_tests(flags: list[str], cond: model.Condition, expected: bool) -> None:
    assert holds(cond, message("Subject: x", flags=flags)) is expected


@pytest.mark.parametrize(
    ("name", "present", "expected"),
    [
        ("invoice-pdf.eml", True, True),
        ("invoice-pdf.eml", False, False),
        ("inline-image-cid.eml", True, False),
        ("inline-image-cid.eml", False, True),
    ],
)
def test_has_attachment(name: str, present: bool, expected: bool) -> None:
    assert holds(AttachmentTest(present), fixture(name)) is expected


RECEIVED = message(
    "Received: from mx1.example.org\nReceived: from mx2.example.org\nReceived: from mx3.example.org\n"
    "Delivered-To: alice+lists@example.org\nDelivered-To: alice@example.org\n"
    "To: a@x.example, stephan@\nCc: undisclosed-recipients:;, c@z.example\nSubject: x"
)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"count": {"header": "Received", "eq": 3}}, True),
        ({"count": {"header": "received", "gt": 2}}, True),
        ({"count": {"header": "Received", "gt": 3}}, False),
        ({"count": {"header": "Received", "le": 2}}, False),
        ({"count": {"header": "X-Absent", "eq": 0}}, True),
        ({"count": {"header": "X-Absent", "ne": 0}}, False),
        ({"count": {"header": "recipient", "eq": 2}}, True),  # valid addresses only, as Sieve counts them
        ({"count": {"header": "to", "eq": 1}}, True),
        ({"count": {"header": "Delivered-To", "eq": 2}}, True),  # any other name counts occurrences
        ({"header": {"name": "Received", "index": 1, "contains": "mx1"}}, True),
        ({"header": {"name": "Received", "index": 1, "contains": "mx3"}}, False),
        ({"header": {"name": "Received", "index": -1, "contains": "mx3"}}, True),
        ({"header": {"name": "Received", "index": -2, "is": "from mx2.example.org"}}, True),
        ({"header": {"name": "Received", "index": 4, "contains": "mx"}}, False),
        ({"header": {"name": "Received", "index": -4, "contains": "mx"}}, False),
        ({"header": {"name": "Delivered-To", "index": 1, "detail": "lists"}}, True),
        ({"header": {"name": "Delivered-To", "index": -1, "detail": "lists"}}, False),
        ({"header": {"name": "Delivered-To", "index": -1, "address": "alice@example.org"}}, True),
    ],
)
def test_count_and_index(data: dict[str, object], expected: bool) -> None:
    assert holds(parse_condition(data), RECEIVED) is expected


def test_explain_names_the_occurrence_and_the_count() -> None:
    trace = explain(parse_condition({"header": {"name": "Received", "index": -1, "contains": "mx1"}}), RECEIVED, CTX)
    assert trace.detail == 'last Received: no value contains "mx1" ("from mx3.example.org")'
    trace = explain(parse_condition({"count": {"header": "Received", "gt": 10}}), RECEIVED, CTX)
    assert trace.detail == "Received: 3 occurrences, not more than 10"


DELIVERED = message(
    "Return-Path: <bounce+alice=example.com@lists.example.org>\nDelivered-To: alice+lists@example.com\n"
    "X-Original-To: alice+python@example.com\nReceived: from mx\nDelivered-To: alice@old.example\n"
    "From: Lists <owner@lists.example.org>\nSubject: x"
)


@pytest.mark.parametrize(
    ("data", "msg", "expected"),
    [
        ({"envelope_to": {"detail": "lists"}}, DELIVERED, True),
        ({"envelope_to": {"detail": "python"}}, DELIVERED, False),  # X-Original-To only without Delivered-To
        ({"envelope_to": {"domain": "old.example"}}, DELIVERED, False),  # an earlier hop's delivery
        ({"envelope_to": {"is": "alice+lists@example.com"}}, DELIVERED, True),  # the address, without <>
        ({"envelope_to": "alice+lists"}, DELIVERED, True),
        ({"envelope_to": {"detail": "python"}}, message("X-Original-To: alice+python@example.com"), True),
        ({"envelope_from": {"domain": "lists.example.org"}}, DELIVERED, True),
        ({"envelope_from": {"is": "bounce+alice=example.com@lists.example.org"}}, DELIVERED, True),
        ({"envelope_from": {"exists": True}}, DELIVERED, True),
        ({"envelope_from": {"exists": True}}, message("Return-Path: <>"), False),  # a bounce has no sender
        ({"envelope_from": {"exists": False}}, message("Subject: never delivered"), True),
        ({"envelope_to": {"address": "owner@lists.example.org"}}, DELIVERED, False),  # never the From header
    ],
)
def test_the_envelope_is_read_from_the_delivery_headers(data: dict[str, object], msg: MessageView, expected: bool) -> None:
    assert holds(parse_condition(data), msg) is expected


ATTACHMENTS = message(
    'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\nSubject: x',
    '--b\nContent-Type: text/plain\n\nsee attached\n'
    '--b\nContent-Type: application/pdf; name="Rechnung 2026.pdf"\nContent-Disposition: attachment; '
    'filename*=utf-8\'\'Rechnung%202026-%C3%BC.pdf\nContent-Transfer-Encoding: base64\n\n' + "QUJD" * 300 + '\n'
    '--b\nContent-Type: image/png\nContent-Disposition: inline; filename="logo.png"\nContent-ID: <logo@x>\n'
    'Content-Transfer-Encoding: base64\n\niVBORw0KGgo=\n'
    '--b\nContent-Type: message/rfc822\n\nSubject: inner\nContent-Type: application/zip; name=inner.zip\n\nPK\n'
    '--b--\n',
)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"attachment": {"type": "application/pdf"}}, True),
        ({"attachment": {"type": "image/*", "filename": "logo"}}, True),  # a named inline image is an attachment
        ({"attachment": {"type": "image", "larger": "1K"}}, False),  # every key on the same part
        ({"attachment": {"filename": {"matches": "*.pdf"}, "larger": "800", "smaller": "1K"}}, True),  # 900 bytes decoded
        ({"attachment": {"filename": {"is": "rechnung 2026-ü.pdf"}}}, True),  # RFC 2231, decoded, any case
        ({"attachment": {"filename": {"is": "rechnung 2026-ü.pdf", "case_sensitive": True}}}, False),
        ({"attachment": {"type": "application/zip"}}, False),  # inside the attached message
        ({"attachment": {"type": ["text/plain", "application/msword"]}}, False),
        ({"mime_header": {"name": "Content-ID", "exists": True}}, True),
        ({"mime_header": {"name": "content-type", "part": "any", "contains": "image/png"}}, True),
        ({"mime_header": {"name": "Content-Type", "is": "text/plain"}}, True),
        ({"mime_header": {"name": "Subject", "is": "x"}}, True),  # the message's own header is a part's too
        ({"mime_header": {"name": "Subject", "is": "inner"}}, False),  # not the attached message's
        ({"mime_header": {"name": "Content-Disposition", "regex": "^inline;"}}, True),
    ],
)
def test_attachment_and_mime_header(data: dict[str, object], expected: bool) -> None:
    assert holds(parse_condition(data), ATTACHMENTS) is expected


def test_explain_names_the_attachment_that_fits() -> None:
    trace = explain(parse_condition({"attachment": {"type": "application/pdf"}}), ATTACHMENTS, CTX)
    assert trace.detail == 'attachment "Rechnung 2026-ü.pdf" (application/pdf, 900 bytes) fits'


SATURDAY_EVENING = message("Date: Sat, 18 Jan 2025 23:30:00 +0100\nSubject: x",
                           internaldate=datetime(2025, 1, 20, 6, 15, tzinfo=timezone.utc))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"sent": {"weekday": ["sat", "sun"]}}, True),  # 22:30 UTC on Saturday
        ({"sent": {"hour": 22}}, True),
        ({"sent": {"hour": {"ge": 18, "lt": 22}}}, False),
        ({"sent": {"hour": 23, "zone": "original"}}, True),
        ({"sent": {"hour": 23, "zone": "Europe/Berlin"}}, True),  # CET in January
        ({"sent": {"weekday": "sun", "hour": 7, "zone": "Asia/Tokyo"}}, True),  # already Sunday morning there
        ({"sent": {"weekday": "sat", "zone": "+0930"}}, False),
        ({"sent": {"day": 18, "month": 1, "year": 2025}}, True),
        ({"sent": {"minute": [0, 15, 45]}}, False),
        ({"arrived": {"weekday": "mon", "hour": {"lt": 9}}}, True),
        ({"arrived": {"hour": 7, "zone": "Europe/Berlin"}}, True),
        ({"arrived": {"weekday": ["sat", "sun"]}}, False),
    ],
)
def test_date_parts(data: dict[str, object], expected: bool) -> None:
    assert holds(parse_condition(data), SATURDAY_EVENING) is expected


def test_date_parts_of_a_missing_date_match_nothing() -> None:
    assert not holds(parse_condition({"sent": {"hour": {"ge": 0}}}), message("Subject: no date"))
    assert not holds(parse_condition({"not": {"sent": {"hour": {"ge": 0}}}}), message("Subject: x\nDate: Mon, 20 Jan 2025 10:00:00 +0000"))


def test_explain_shows_the_time_in_the_zone_it_read() -> None:
    trace = explain(parse_condition({"sent": {"weekday": ["sat", "sun"], "zone": "Europe/Berlin"}}), SATURDAY_EVENING, CTX)
    assert trace.detail == "sent Sat 2025-01-18 23:30 (Europe/Berlin): weekday sat or sun"


# ---------------------------------------------------------------- combinators


YES = header("Subject", "contains", "aus")
NO = header("Subject", "contains", "nowhere")


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        (All(()), True),
        (model.Any(()), False),
        (All((YES, YES)), True),
        (All((YES, NO)), False),
        (model.Any((NO, YES)), True),
        (model.Any((NO, NO)), False),
        (Not(NO), True),
        (Not(All(())), False),
        (All((YES, model.Any((NO, Not(NO))))), True),
    ],
)
def test_combinators(cond: model.Condition, expected: bool) -> None:
    assert holds(cond, GRUSSE) is expected


# ---------------------------------------------------------------- explanations


def test_explain_names_the_header_the_value_and_the_pattern() -> None:
    trace = explain(header("From", "contains", "github.com"), GITHUB, CTX)
    assert trace == Trace(trace.node, True, 'From: "Mona Lisa <notifications@github.com>" contains "github.com"')


@pytest.mark.parametrize(
    ("cond", "detail"),
    [
        (header("X-Absent", "contains", "x"), "X-Absent: absent"),
        (header("X-GitHub-Reason", "is", "author"), 'X-GitHub-Reason: no value is "author" ("mention")'),
        (address("From", "domain", "github.com"), 'From: domain "github.com" is or is under "github.com"'),
        (address("To", "address", "x@y"), 'To: no address matches "x@y" ("widgets@noreply.github.com")'),
        (
            list_id("is", "widgets.octo-org.github.com"),
            'List-Id: list identifier "widgets.octo-org.github.com" is "widgets.octo-org.github.com"',
        ),
        (SizeTest("larger", 100), f"size {GITHUB.size:,} bytes is larger than 100 bytes"),
        (FlagTest("\\Seen", True), "flag \\Seen is not set"),
        (AttachmentTest(False), "has no attachment"),
        (DateTest("arrival", "since", date(2026, 11, 1)), "arrival day 2026-11-17 is since 2026-11-01"),
        (
            AgeTest("older_than", 30 * DAY),
            "arrived 2026-11-17 09:14 UTC, 3 days ago: not older than 30 days",
        ),
    ],
)
def test_explain_details(cond: model.Condition, detail: str) -> None:
    assert explain(cond, GITHUB, CTX).detail == detail


def test_explain_evaluates_every_child_without_short_circuit() -> None:
    trace = explain(All((NO, YES, Not(YES))), GRUSSE, CTX)
    assert [child.result for child in trace.children] == [False, True, False]
    assert (trace.result, trace.detail) == (False, "all: 2 of 3 fail")
    assert trace.children[2].children[0].result is True


def test_a_trace_renders_as_indented_lines() -> None:
    lines = explain(model.Any((NO, YES)), GRUSSE, CTX).lines()
    assert lines[0] == "yes  any: 1 of 2 hold"
    assert lines[1].startswith('    no   Subject: no value contains "nowhere"')
    assert lines[2].startswith('    yes  Subject: "GRÜSSE aus der Straße" contains "aus"')


def test_a_naive_now_is_read_as_utc() -> None:
    assert EvalContext(now=datetime(2026, 1, 1)).now == datetime(2026, 1, 1, tzinfo=timezone.utc)


ALL_LEAVES: list[model.Condition] = [
    header(("To", "Cc", "Bcc"), "contains", "alice"),
    header("Subject", "regex", r"\bre:"),
    list_id("matches", "*.org"),
    address("From", "domain", "example.com"),
    address(("To", "Cc"), "display_name", "a"),
    HeaderExists("header", ("List-Unsubscribe",), True),
    BodyTest("body", "contains", ("the",)),
    SizeTest("larger", 700),
    AgeTest("newer_than", 7 * DAY),
    DateTest("sent", "since", date(2026, 11, 15)),
    AttachmentTest(True),
]


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.glob("*.eml")))
def test_explain_and_matches_agree_on_every_fixture(name: str) -> None:
    msg = fixture(name)
    for cond in ALL_LEAVES:
        assert explain(cond, msg, CTX).result is matches(cond, msg, CTX), cond


@pytest.mark.parametrize("encoding", ["base64", "quoted-printable", "7bit"])
def test_an_attachment_keeps_its_size_when_a_large_message_is_read_without_it(
    encoding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64
    import quopri

    import mailrules.message as message_module

    content = bytes(range(256)) * 40 if encoding != "7bit" else b"plain line\n" * 900
    encoded = {"base64": base64.encodebytes, "quoted-printable": quopri.encodestring, "7bit": bytes}[encoding](content)
    raw = (b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\nSubject: x\n\n--b\nContent-Type: text/plain\n\n'
           b"hi\n--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=a.bin\n"
           b"Content-Transfer-Encoding: " + encoding.encode() + b"\n\n" + encoded + b"\n--b\nContent-Type: application/xhtml+xml\n\n"
           b"<p>xhtml words</p>\n--b--\n")
    whole = MessageView.from_bytes(raw)
    monkeypatch.setattr(message_module, "SLIM_ABOVE", 0)
    slimmed = MessageView.from_bytes(raw)
    assert slimmed.attachments() == whole.attachments()
    assert abs(whole.attachments()[0].size - len(content)) <= 1  # a trailing line break of the 7bit text
    assert slimmed.body_text() == whole.body_text() == "hi\nxhtml words"
    assert [name for headers in slimmed.part_headers() for name, _ in headers] == [
        name for headers in whole.part_headers() for name, _ in headers]
