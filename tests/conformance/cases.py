"""Rule sets and messages for the Sieve differential test, with the differences we expect.

Most rule sets are "probes": every rule only adds a keyword named after itself, so the
flags a message ends up with say exactly which rules matched.  The filing sets check
moves, copies, deletes, stop and the flags a filed message carries.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from mailrules.model import (
    ActiveWindow,
    AddFlags,
    AddressTest,
    AgeTest,
    AttachmentPartTest,
    AttachmentTest,
    All,
    Any,
    BodyTest,
    Condition,
    Copy,
    CountTest,
    DatePartTest,
    DateTest,
    PartCheck,
    Delete,
    FlagTest,
    HeaderExists,
    HeaderTest,
    MimeHeaderTest,
    Move,
    Not,
    Redirect,
    RemoveFlags,
    Rule,
    RuleSet,
    SizeTest,
    Stop,
    Trash,
)

MESSAGES = Path(__file__).parent / "messages"
RECIPIENT = ("To", "Cc", "Bcc")


def message_names() -> list[str]:
    return sorted(path.name for path in MESSAGES.glob("*.eml"))


def header(key: str, names: tuple[str, ...], operator: str, *values: str, case_sensitive: bool = False) -> HeaderTest:
    return HeaderTest(key, names, operator, values, case_sensitive, list_id=key == "list_id")  # type: ignore[arg-type]


def subject(operator: str, *values: str, case_sensitive: bool = False) -> HeaderTest:
    return header("subject", ("Subject",), operator, *values, case_sensitive=case_sensitive)


def address(key: str, names: tuple[str, ...], operator: str, *values: str) -> AddressTest:
    return AddressTest(key, names, operator, values)  # type: ignore[arg-type]


def probes(**conditions: Condition) -> RuleSet:
    """One rule per condition; each only adds the keyword ``$<name>``."""
    return RuleSet(tuple(Rule(name, cond, (AddFlags((f"${name}",)),)) for name, cond in conditions.items()))


STRINGS = probes(
    subject_contains=subject("contains", "report"),
    subject_is=subject("is", "verify your account"),
    subject_matches=subject("matches", "[acme/*] * (#*)"),
    subject_matches_one=subject("matches", "re: weekly report (week ?)"),
    subject_regex=subject("regex", r"^\[Python-Dev\] PEP [0-9]+:"),
    subject_regex_end=subject("regex", r"INV-\d{4}-\d+$"),
    from_contains=header("from", ("From",), "contains", "github"),
    x_mailer=header("header", ("X-Mailer",), "contains", "evolution"),
    spam_flag_is=header("header", ("X-Spam-Flag",), "is", "yes"),
    list_id_exists=HeaderExists("header", ("List-Id",), True),
    unsubscribe_absent=HeaderExists("header", ("List-Unsubscribe",), False),
    list_id_is=header("list_id", ("List-Id",), "is", "python-dev.python.org"),
    list_id_contains=header("list_id", ("List-Id",), "contains", "acme"),
    list_id_matches=header("list_id", ("List-Id",), "matches", "*.github.com"),
    recipient_contains=header("recipient", RECIPIENT, "contains", "corp.example"),
    any_of=Any((subject("contains", "invoice"), header("from", ("From",), "contains", "python.org"))),
    not_all=Not(All((subject("contains", "re:"), header("from", ("From",), "contains", "corp")))),
)

ADDRESSES = probes(
    github_domain=address("from", ("From",), "domain", "github.com"),
    billing_address=address("from", ("From",), "address", "billing@shop.example"),
    alice_localpart=address("recipient", RECIPIENT, "localpart", "alice"),
    team_address=address("recipient", RECIPIENT, "address", "team@corp.example"),
    cc_domain=address("cc", ("Cc",), "domain", "corp.example"),
    reply_to_localpart=address("reply_to", ("Reply-To",), "localpart", "noreply"),
    display_github=address("from", ("From",), "display_name", "GitHub"),
    display_notifications=address("from", ("From",), "display_name", "notifications"),
    group_has_no_address=address("to", ("To",), "localpart", "undisclosed-recipients"),
)

CASE = probes(
    ascii_any_case=subject("contains", "weekly REPORT"),
    ascii_case_sensitive_miss=subject("contains", "weekly", case_sensitive=True),
    ascii_case_sensitive_hit=subject("contains", "Weekly", case_sensitive=True),
    umlaut=subject("contains", "grüße"),
    umlaut_upper=subject("contains", "KÖLN"),
    sharp_s_as_ss=subject("contains", "GRÜSSE"),
    umlaut_sender=header("from", ("From",), "contains", "jürgen"),
    umlaut_case_sensitive=subject("contains", "Grüße", case_sensitive=True),
)

SIZES_AND_DATES = probes(
    larger_1k=SizeTest("larger", 1024),
    smaller_250=SizeTest("smaller", 250),
    larger_than_itself=SizeTest("larger", 367),
    smaller_than_itself=SizeTest("smaller", 367),
    sent_before=DateTest("sent", "before", date(2025, 1, 20)),
    sent_since=DateTest("sent", "since", date(2025, 1, 22)),
    arrived_since=DateTest("arrival", "since", date(2000, 1, 1)),
    arrived_before=DateTest("arrival", "before", date(2000, 1, 1)),
    older_than_a_day=AgeTest("older_than", 86400),
    newer_than_an_hour=AgeTest("newer_than", 3600),
)

FLAGS = RuleSet(
    (
        Rule("mark", header("from", ("From",), "contains", "github"), (AddFlags(("\\Flagged", "$GitHub")),)),
        Rule("saw_mark", FlagTest("\\Flagged", True), (AddFlags(("$SawFlagged",)),)),
        Rule("unmark", subject("contains", "security"), (RemoveFlags(("\\Flagged",)),)),
        Rule("not_flagged", FlagTest("\\Flagged", False), (AddFlags(("$NotFlagged",)),)),
        Rule("read_spam", HeaderExists("header", ("X-Spam-Flag",), True), (AddFlags(("\\Seen",)),)),
        Rule("unread", Not(FlagTest("\\Seen", True)), (AddFlags(("$Unread",)),)),
        Rule("keyword_seen", FlagTest("$github", True), (AddFlags(("$KeywordsIgnoreCase",)),)),
    )
)

FILING = RuleSet(
    (
        Rule("github", address("from", ("From",), "domain", "github.com"), (AddFlags(("$GitHub",)), Move("Notifications/GitHub"))),
        Rule("invoice", subject("contains", "invoice"), (Copy("Archive"), AddFlags(("\\Seen",)))),
        Rule("spam", HeaderExists("header", ("X-Spam-Flag",), True), (Delete(),)),
        Rule("lists", HeaderExists("header", ("List-Id",), True), (Stop(),)),
        Rule("pep", subject("contains", "pep"), (Move("Later"),)),
        Rule("phishing", address("from", ("From",), "domain", "evilgithub.com"), (Trash("Trash"),)),
        Rule("team", header("recipient", RECIPIENT, "contains", "corp.example"), (Copy("Team"), Redirect("boss@example.com"))),
        Rule("team_inbox", address("from", ("From",), "localpart", "carol"), (Move("INBOX"),)),
        Rule("after_team", subject("contains", "weekly"), (Move("Never"),)),
    )
)

COPY_THEN_DELETE = RuleSet(
    (
        Rule("keep_a_copy", subject("contains", "invoice"), (AddFlags(("$Billed",)), Copy("Archive"), Copy("Archive"))),
        Rule("then_delete", header("from", ("From",), "contains", "shop.example"), (Delete(), Stop())),
    )
)

BODY = probes(
    body_contains=BodyTest("body", "contains", ("prize",)),
    body_plain_and_html=BodyTest("body", "contains", ("20% off",)),
    body_regex=BodyTest("body", "regex", (r"Total: [0-9]+\.[0-9]{2}",), case_sensitive=True),
    body_markup=BodyTest("body", "contains", ("flash offer",)),
    body_entity=BodyTest("body", "contains", ("offer & more",)),
)

# RFC 5228 §2.7.4: an invalid address (``stephan@``, ``@example.org``, ``MAILER-DAEMON``)
# never matches :localpart or :domain; :all still sees its text.
INVALID_ADDRESSES = probes(
    localpart_of_no_domain=address("from", ("From",), "localpart", "stephan"),
    empty_localpart=address("to", ("To",), "localpart", ""),
    domain_of_no_localpart=address("to", ("To",), "domain", "example.org"),
    localpart_of_bare_word=address("cc", ("Cc",), "localpart", "MAILER-DAEMON"),
    reply_to_localpart=address("reply_to", ("Reply-To",), "localpart", "alice"),
    whole_invalid_address=address("from", ("From",), "address", "stephan@"),
    whole_bare_word=address("cc", ("Cc",), "address", "mailer-daemon"),
    valid_localpart=address("to", ("To",), "localpart", "alice"),
)

# Which parts a body test reads (spec §2.2, docs/rules.md "What body reads").
BODY_PARTS = probes(
    any_body=BodyTest("body", "contains", ("",)),
    readable_part=BodyTest("body", "contains", ("readable part",)),
    scrambled_part=BodyTest("body", "contains", ("scrambled part",)),
    reused_boundary_text=BodyTest("body", "contains", ("minutes are attached",)),
    xhtml_text=BodyTest("body", "contains", ("flash offer: 20% off",)),
    reported=BodyTest("body", "contains", ("was reported",)),
)

# RFC 5233 subaddresses, split at Pigeonhole's default recipient_delimiter "+".
SUBADDRESSES = probes(
    user_alice=address("to", ("To",), "user", "alice"),
    detail_github=address("to", ("To",), "detail", "github"),
    detail_case=address("recipient", RECIPIENT, "detail", "GitHub"),
    user_bob=address("to", ("To",), "user", "bob"),
    no_detail_is_not_empty=address("to", ("To",), "detail", ""),
    empty_detail=address("cc", ("Cc",), "detail", ""),
    first_separator_splits=address("cc", ("Cc",), "detail", "lists+python"),
    user_of_invalid=address("from", ("From",), "user", "stephan"),
)

# RFC 5231 :count and RFC 5260 :index.
COUNTS = probes(
    three_hops=CountTest("Received", ("Received",), "eq", 3),
    more_than_two_hops=CountTest("Received", ("Received",), "gt", 2),
    few_hops=CountTest("Received", ("Received",), "lt", 2),
    no_spam_flag=CountTest("X-Spam-Flag", ("X-Spam-Flag",), "eq", 0),
    many_recipients=CountTest("recipient", RECIPIENT, "ge", 3, addresses=True),  # valid addresses only
    two_recipients=CountTest("recipient", RECIPIENT, "eq", 2, addresses=True),
    one_to=CountTest("to", ("To",), "ne", 1, addresses=True),
    to_fields=CountTest("To", ("To",), "eq", 1),
    first_hop=HeaderTest("header", ("Received",), "contains", ("mx3.example.com by imap",), index=1),
    last_hop=HeaderTest("header", ("Received",), "contains", ("from mx1",), index=-1),
    not_last=HeaderTest("header", ("Received",), "contains", ("from mx1",), index=1),
    second_from_bottom=HeaderTest("header", ("Received",), "matches", ("from mx2*",), index=-2),
    first_delivered_detail=AddressTest("header", ("Delivered-To",), "detail", ("lists",), index=1),
    last_delivered_address=AddressTest("header", ("Delivered-To",), "address", ("alice@example.com",), index=-1),
    last_delivered_detail=AddressTest("header", ("Delivered-To",), "detail", ("lists",), index=-1),
)

def sent(*checks: PartCheck, zone: str = "UTC") -> DatePartTest:
    return DatePartTest("sent", checks, zone)


# RFC 5260 date parts of the Date header (and of the arrival, which at delivery is now).
DATE_PARTS = probes(
    weekend=sent(PartCheck("weekday", (5, 6))),
    monday_morning=sent(PartCheck("weekday", (0,)), PartCheck("hour", (), (("lt", 12),))),
    evening_utc=sent(PartCheck("hour", (), (("ge", 17),))),
    evening_in_own_zone=sent(PartCheck("hour", (), (("ge", 18),)), zone="original"),
    evening_at_plus_one=sent(PartCheck("hour", (19,)), zone="+0100"),
    pacific_morning=sent(PartCheck("hour", (7,)), PartCheck("minute", (0,)), zone="-0800"),
    late_january=sent(PartCheck("day", (), (("ge", 20), ("le", 26))), PartCheck("month", (1,))),
    not_2025=sent(PartCheck("year", (), (("ne", 2025),))),
    arrived_some_hour=DatePartTest("arrival", (PartCheck("hour", (), (("ge", 0),)),)),
    arrived_before_2000=DatePartTest("arrival", (PartCheck("year", (), (("lt", 2000),)),)),
)

# Rule-level active windows (Sieve currentdate): both sides read today's date.
WINDOWS = RuleSet(tuple(
    Rule(name, address("from", ("From",), "domain", "github.com"), (AddFlags((f"${name}",)),), active=window)
    for name, window in {
        "ended": ActiveWindow(until=date(2000, 1, 1)),
        "started": ActiveWindow(start=date(2000, 1, 1)),
        "open": ActiveWindow(date(2000, 1, 1), date(2999, 12, 31), zone="+1400"),
        "not_yet": ActiveWindow(start=date(2999, 1, 1), zone="-1200"),
    }.items()
))

def envelope(key: str, operator: str, *values: str) -> AddressTest:
    names = ("Delivered-To", "X-Original-To") if key == "envelope_to" else ("Return-Path",)
    return AddressTest(key, names, operator, values)  # type: ignore[arg-type]


# The envelope as the delivery headers record it (sieve-test is given the same recipient).
ENVELOPE = probes(
    to_detail=envelope("envelope_to", "detail", "lists"),
    to_original_is_not_final=envelope("envelope_to", "detail", "python"),
    to_address=envelope("envelope_to", "address", "alice+lists@example.com"),
    to_domain=envelope("envelope_to", "domain", "example.com"),
    from_domain=envelope("envelope_from", "domain", "lists.example.org"),
    from_user=envelope("envelope_from", "user", "bounce"),
    from_contains=HeaderTest("envelope_from", ("Return-Path",), "contains", ("alice=example.com",)),
    from_github=envelope("envelope_from", "domain", "github.com"),
)

# RFC 5703 header :mime :anychild: headers of the message and of every MIME part.
MIME_HEADERS = probes(
    pdf_part=MimeHeaderTest("Content-Type", "contains", ("application/pdf",)),
    any_disposition=MimeHeaderTest("Content-Disposition", "exists"),
    no_content_id=MimeHeaderTest("Content-ID", "exists", present=False),
    named_minutes=MimeHeaderTest("Content-Disposition", "matches", ("*minutes.pdf*",)),
    top_multipart=MimeHeaderTest("Content-Type", "is", ("multipart/mixed; boundary=\"outer\"",)),
    html_part=MimeHeaderTest("Content-Type", "regex", ("^text/html",)),
    own_subject=MimeHeaderTest("Subject", "contains", ("reported", "digest")),
    attached_subject=MimeHeaderTest("Subject", "contains", ("claim now",)),
)

# has_attachment and attachment: exported as foreverypart loops over RFC 5703 tests.
ATTACHMENT_PROBES = probes(
    has_attachment=AttachmentTest(True),
    has_none=AttachmentTest(False),
    pdf=AttachmentPartTest(types=("application/pdf",)),
    any_image=AttachmentPartTest(types=("image/*",)),
    minutes=AttachmentPartTest("matches", ("minutes.*",)),
    pdf_named_invoice=AttachmentPartTest("contains", ("invoice",), types=("application/pdf",)),
    not_a_pdf_named_minutes=AttachmentPartTest("is", ("minutes.pdf",), types=("text/plain", "image")),
)

CASES: dict[str, RuleSet] = {
    "attachments": ATTACHMENT_PROBES,
    "mime-headers": MIME_HEADERS,
    "envelope": ENVELOPE,
    "windows": WINDOWS,
    "date-parts": DATE_PARTS,
    "counts": COUNTS,
    "subaddresses": SUBADDRESSES,
    "invalid-addresses": INVALID_ADDRESSES,
    "body-parts": BODY_PARTS,
    "strings": STRINGS,
    "addresses": ADDRESSES,
    "case": CASE,
    "sizes-and-dates": SIZES_AND_DATES,
    "body": BODY,
    "flags": FLAGS,
    "filing": FILING,
    "copy-then-delete": COPY_THEN_DELETE,
}

# Probes that match no message on purpose: both sides must agree on "no".
PROBES_MATCHING_NOTHING: dict[str, set[str]] = {
    "addresses": {"group_has_no_address", "display_notifications"},  # the latter only in Sieve, see below
    "case": {"ascii_case_sensitive_miss"},
    "body-parts": {"scrambled_part"},
    "date-parts": {"arrived_before_2000"},
    "envelope": {"to_original_is_not_final", "from_github"},  # From is not the envelope
    "mime-headers": {"attached_subject"},
    "attachments": {"not_a_pdf_named_minutes"},
    "windows": {"ended", "not_yet"},
    "counts": {"not_last", "last_delivered_detail"},
    "subaddresses": {"user_of_invalid", "no_detail_is_not_empty"},
    "invalid-addresses": {"localpart_of_no_domain", "empty_localpart",
                          "localpart_of_bare_word", "reply_to_localpart"},
    "sizes-and-dates": {"arrived_before", "older_than_a_day"},
}

# (case, message) -> why Sieve and mailrules legitimately disagree there.
_ASCII_ONLY = "Sieve's i;ascii-casemap folds ASCII letters only (Pigeonhole has no i;unicode-casemap)"
_SHARP_S = "mailrules casefolds ß to ss (spec §7); no Sieve comparator does"
_COUNT_INVALID = ("count of addresses: mailrules counts valid addresses; Pigeonhole counts a header with no valid "
                  "address (undisclosed-recipients:;, @example.org) as one")
DIFFERENCES: dict[tuple[str, str], str] = {
    ("case", "grusse.eml"): f"{_ASCII_ONLY}: 'KÖLN' vs 'Köln'; {_SHARP_S}: 'GRÜSSE' vs 'Grüße'",
    ("case", "grusse-upper.eml"): f"{_ASCII_ONLY}: 'grüße'/'jürgen' vs 'GRÜSSE'/'JÜRGEN'",
    ("addresses", "github.eml"): "display_name has no Sieve address part: the whole From header contains 'notifications'",
    ("body", "embedded-message.eml"): "mailrules' body never reads an attached message/rfc822 part "
    "(docs/rules.md); Sieve's body :text reads its text",
    ("body", "no-boundary.eml"): "a multipart without a boundary: mailrules reads its content as text, "
    "Pigeonhole finds no parts",
    ("body", "digest.eml"): "mailrules' body never reads a multipart/digest entry (message/rfc822 by default); Sieve does",
    ("body", "invalid-content-type.eml"): "an invalid Content-Type is text/plain to mailrules (RFC 2045 §5.2), "
    "no text to Pigeonhole",
    ("body-parts", "invalid-content-type.eml"): "an invalid Content-Type is text/plain to mailrules (RFC 2045 §5.2), "
    "no text to Pigeonhole",
    ("body-parts", "no-boundary.eml"): "a multipart without a boundary: mailrules reads its content as text, "
    "Pigeonhole finds no parts",
    ("mime-headers", "embedded-message.eml"): "mime_header never reads the parts of an attached message "
    "(docs/rules.md); Sieve's :anychild does",
    ("counts", "invalid-addresses.eml"): _COUNT_INVALID,
    ("counts", "spam.eml"): _COUNT_INVALID,
    ("body", "newsletter-html.eml"): "Pigeonhole's HTML-to-text for body :text does not decode entities (&amp;, &nbsp;) "
    "as mailrules' visible text does (spec §7)",
}
