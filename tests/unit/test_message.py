"""Reading messages: header values, encoded words, addresses, dates, sizes, body text, attachments."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailrules.message import (
    Address,
    MessageView,
    NotFetched,
    crlf_size,
    decode_words,
    html_to_text,
    parse_address_tokens,
    parse_addresses,
    split_header,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"


def fixture(name: str, **kwargs: object) -> MessageView:
    return MessageView.from_bytes((FIXTURES / name).read_bytes(), **kwargs)  # type: ignore[arg-type]


def message(header: str, body: str = "", **kwargs: object) -> MessageView:
    """A message from LF-separated header lines and a body, sent as CRLF like a server stores it."""
    raw = (header.strip("\n") + "\n\n" + body).replace("\n", "\r\n").encode("utf-8")
    return MessageView.from_bytes(raw, **kwargs)  # type: ignore[arg-type]


def header_only(header: str, **kwargs: object) -> MessageView:
    block = (header.strip("\n") + "\n\n").replace("\n", "\r\n").encode("utf-8")
    defaults: dict[str, object] = {"size": 1000, "internaldate": None, "flags": ()}
    return MessageView.from_parts(header=block, **(defaults | kwargs))  # type: ignore[arg-type]


# ---------------------------------------------------------------- header values


def test_folded_header_is_unfolded_by_removing_only_the_line_break() -> None:
    msg = message("Subject: Quarterly\n\treport\n  for Q3\nTo: a@example.org")
    assert msg.header_values("Subject") == ["Quarterly\treport  for Q3"]


def test_header_names_are_case_insensitive() -> None:
    msg = message("X-Spam-Flag: YES")
    assert msg.header_values("x-spam-flag") == msg.header_values("X-SPAM-FLAG") == ["YES"]


def test_every_occurrence_of_a_repeated_header_is_a_value_in_order() -> None:
    assert fixture("spam-flagged.eml").header_values("X-Label") == ["first", "second"]


def test_an_absent_header_has_no_values() -> None:
    assert fixture("missing-date-from.eml").header_values("From") == []


def test_an_empty_header_has_one_empty_value() -> None:
    assert fixture("empty-headers.eml").header_values("Subject") == [""]


def test_a_comment_stays_part_of_the_header_value() -> None:
    assert fixture("bounce.eml").header_values("From") == ["MAILER-DAEMON@mx.example.net (Mail Delivery System)"]


def test_lf_and_crlf_messages_read_the_same_headers() -> None:
    lf = MessageView.from_bytes(b"Subject: one\n two\nTo: a@b\n\nbody\n")
    crlf = MessageView.from_bytes(b"Subject: one\r\n two\r\nTo: a@b\r\n\r\nbody\r\n")
    assert lf.header_items() == crlf.header_items() == [("Subject", "one two"), ("To", "a@b")]


def test_an_mbox_from_line_is_not_a_header_and_not_a_warning() -> None:
    msg = MessageView.from_bytes(b"From alice@example.org Mon Nov 16 10:00:00 2026\nSubject: hi\n\nbody")
    assert msg.header_items() == [("Subject", "hi")]
    assert msg.warnings == []


def test_a_line_that_is_no_header_field_is_skipped_with_a_warning() -> None:
    msg = MessageView.from_bytes(b"Subject: hi\nthis is not a field\nTo: a@b\n\nbody")
    assert msg.header_items() == [("Subject", "hi"), ("To", "a@b")]
    assert any("not a header field" in warning for warning in msg.warnings)


def test_the_header_ends_at_the_first_empty_line() -> None:
    msg = MessageView.from_bytes(b"Subject: hi\r\n\r\nX-Not-A-Header: body text\r\n")
    assert msg.header_values("X-Not-A-Header") == []


def test_raw_values_are_unfolded_but_not_decoded() -> None:
    msg = fixture("encoded-words.eml")
    assert msg.raw_header_values("Subject") == ["=?UTF-8?B?R3LDvMOfZSBhdXMg?= =?UTF-8?B?S8O2bG4=?= und mehr"]


def test_a_header_only_fetch_reads_the_same_values_as_the_whole_message() -> None:
    raw = (FIXTURES / "github-notification.eml").read_bytes()
    whole = MessageView.from_bytes(raw)
    parts = MessageView.from_parts(header=split_header(raw)[0], size=len(raw), internaldate=None, flags=())
    assert parts.header_items() == whole.header_items()


# ---------------------------------------------------------------- RFC 2047 and raw 8-bit


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Subject", "Grüße aus Köln und mehr"),  # B words across a fold, then plain text
        ("X-Split-Character", "€ 100"),  # one UTF-8 character split over two B words
        ("X-Mixed", "Preis: 5 € (netto) hätte ok"),  # Q windows-1252, B latin-1, plain text between kept
        ("From", "Jürgen Müller <juergen@example.de>"),
    ],
)
def test_encoded_words_are_decoded_and_other_text_is_kept_as_written(header: str, value: str) -> None:
    assert fixture("encoded-words.eml").header_values(header) == [value]


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("=?utf-8?q?a?=  =?utf-8?q?b?= c", "ab c"),  # white space between encoded words disappears
        ("a =?utf-8?q?b?= c", "a b c"),  # white space next to plain text stays
        ("=?UTF-8*en?Q?hello_world?=", "hello world"),  # RFC 2231 language suffix
        ("=?utf-8?b?8J+YgA?=", "😀"),  # missing base64 padding
        ("no encoded words here =? ?=", "no encoded words here =? ?="),
    ],
)
def test_decode_words_follows_rfc_2047(raw: str, decoded: str) -> None:
    assert decode_words(raw) == decoded


@pytest.mark.parametrize("raw", ["=?x-unknown?Q?abc?=", "=?utf-8?B?w6?= x", "=?utf-8?B?!!!?="])
def test_an_undecodable_encoded_word_makes_the_value_undecodable(raw: str) -> None:
    assert decode_words(raw) is None


def test_a_header_that_cannot_be_decoded_is_read_raw_with_a_warning() -> None:
    msg = fixture("encoded-words.eml")
    assert msg.header_values("X-Unknown-Charset") == ["=?x-no-such-charset?Q?Rechnung?= Invoice"]
    assert any("X-Unknown-Charset" in warning for warning in msg.warnings)


def test_raw_utf8_headers_are_read_as_utf8() -> None:
    msg = fixture("grusse-utf8-headers.eml")
    assert msg.subject == "GRÜSSE aus der Straße"
    assert msg.warnings == []


def test_raw_8bit_headers_that_are_not_utf8_are_read_as_latin1_with_a_warning() -> None:
    msg = fixture("raw-8bit-latin1.eml")
    assert msg.subject == "Grüße vom alten Mailer"
    assert msg.addresses("From")[0].display_name == "Jürgen Groß"
    assert any("Latin-1" in warning for warning in msg.warnings)


def test_message_id_and_subject_are_the_first_decoded_values() -> None:
    msg = fixture("alternative-qp.eml")
    assert (msg.message_id, msg.subject) == ("<treffen-1@example.com>", "Treffen nächste Woche")


def test_a_message_without_subject_has_an_empty_subject_and_no_message_id() -> None:
    msg = MessageView.from_bytes(b"To: a@b\n\nbody")
    assert (msg.subject, msg.message_id) == ("", None)


# ---------------------------------------------------------------- addresses


def addr(display_name: str, address: str) -> Address:
    localpart, _, domain = address.rpartition("@")
    return Address(display_name, localpart, domain, address)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice@example.org", [addr("", "alice@example.org")]),
        ("Alice Example <alice@example.org>", [addr("Alice Example", "alice@example.org")]),
        (
            '"Doe, John" <john@example.com>, jane@example.com',
            [addr("Doe, John", "john@example.com"), addr("", "jane@example.com")],
        ),
        ("alice@example.org (Alice at work)", [addr("", "alice@example.org")]),  # a comment is no display name
        ("(just a comment) <c@example.com>", [addr("", "c@example.com")]),
        ("undisclosed-recipients:;", []),
        ("team: a@x.org, b@y.org;", [addr("", "a@x.org"), addr("", "b@y.org")]),
        ("team: a@x.org;, c@z.org", [addr("", "a@x.org"), addr("", "c@z.org")]),
        ("=?utf-8?q?M=C3=BCller=2C_Hans?= <h@example.de>", [addr("Müller, Hans", "h@example.de")]),
        ('"=?utf-8?q?M=C3=BCller?=" <h@example.de>', [addr("Müller", "h@example.de")]),
        ("J. Smith <js@example.com>", [addr("J. Smith", "js@example.com")]),
        ("<@relay.example:x@example.com>", [addr("", "x@example.com")]),  # obsolete source route
        ("a@x.org,, b@y.org,", [addr("", "a@x.org"), addr("", "b@y.org")]),
        ("<>", []),
        ("Alice Smith", []),  # a name without an address
        ("", []),
    ],
)
def test_addresses_follow_rfc_5322(value: str, expected: list[Address]) -> None:
    assert parse_addresses(value) == expected


def test_an_address_without_a_domain_is_its_local_part() -> None:
    assert parse_addresses("MAILER-DAEMON") == [Address("", "MAILER-DAEMON", "", "MAILER-DAEMON")]


def test_addresses_of_every_occurrence_of_a_header_count() -> None:
    msg = message("To: a@example.org\nTo: B <b@example.org>")
    assert [a.address for a in msg.addresses("To")] == ["a@example.org", "b@example.org"]


@pytest.mark.parametrize(
    ("name", "field", "expected"),
    [
        ("undisclosed-recipients.eml", "To", []),
        ("group-syntax.eml", "To", ["alice@example.org", "bob@example.org", "carol@example.com"]),
        ("group-syntax.eml", "Cc", []),
        ("empty-headers.eml", "Cc", []),
        ("bounce.eml", "Return-Path", []),
        ("quoted-comma.eml", "To", ["alice@example.org", "jane@qa.example.com"]),
    ],
)
def test_addresses_of_fixture_headers(name: str, field: str, expected: list[str]) -> None:
    assert [a.address for a in fixture(name).addresses(field)] == expected


ADDRESS_ALPHABET = st.sampled_from(
    list('ab.@<> ,"\\()=?:;[]\t') + ["=?utf-8?q?M=C3=BC?=", "x@y.org", "Alice", "ä", '"Doe, J (QA)"']
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ADDRESS_ALPHABET, max_size=14).map("".join))
def test_the_fast_address_reader_agrees_with_the_full_tokenizer(value: str) -> None:
    assert parse_addresses(value) == parse_address_tokens(value)


# ---------------------------------------------------------------- dates and arrival time


def test_sent_date_is_the_parsed_date_header_with_its_zone() -> None:
    sent = fixture("github-notification.eml").sent_date()
    assert sent == datetime(2026, 11, 17, 9, 14, 1, tzinfo=timezone.utc)
    assert sent is not None and sent.utcoffset() == timedelta(hours=-8)


def test_a_date_in_minus_0000_is_read_as_utc() -> None:
    sent = message("Date: Mon, 16 Nov 2026 10:00:00 -0000").sent_date()
    assert sent == datetime(2026, 11, 16, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize("name", ["empty-headers.eml", "missing-date-from.eml"])
def test_an_unreadable_or_absent_date_header_has_no_sent_date(name: str) -> None:
    assert fixture(name).sent_date() is None


def test_arrival_time_of_a_file_is_the_topmost_received_date_in_its_own_zone() -> None:
    arrival = fixture("received-chain.eml").internaldate
    assert arrival is not None
    assert (arrival.isoformat(), arrival.date().isoformat()) == ("2026-11-14T00:30:00+01:00", "2026-11-14")


def test_arrival_time_skips_received_headers_without_a_date() -> None:
    msg = message(
        "Received: from a by b\n"
        "Received: from c by d; Mon, 16 Nov 2026 10:00:00 +0000\n"
        "Date: Sun, 1 Nov 2026 00:00:00 +0000"
    )
    assert msg.internaldate == datetime(2026, 11, 16, 10, tzinfo=timezone.utc)


def test_arrival_time_falls_back_to_the_date_header_then_to_none() -> None:
    assert message("Date: Sun, 1 Nov 2026 08:00:00 +0000").internaldate == datetime(2026, 11, 1, 8, tzinfo=timezone.utc)
    assert fixture("missing-date-from.eml").internaldate is None


def test_an_explicit_internaldate_wins_and_a_naive_one_is_utc() -> None:
    msg = fixture("received-chain.eml", internaldate=datetime(2020, 1, 2, 3, 4, 5))
    assert msg.internaldate == datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


# ---------------------------------------------------------------- size


@pytest.mark.parametrize("name", ["lf-only.eml", "python-dev.eml", "github-notification.eml"])
def test_size_of_a_file_counts_line_endings_as_crlf(name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    as_stored = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert fixture(name).size == len(as_stored)


def test_crlf_size_counts_only_bare_lf_twice() -> None:
    assert crlf_size(b"a\r\nb\nc") == len(b"a\r\nb\r\nc")


def test_size_of_fetched_parts_is_the_servers_rfc822_size() -> None:
    assert header_only("Subject: x", size=12345).size == 12345


# ---------------------------------------------------------------- body text


@pytest.mark.parametrize(
    ("name", "present", "absent"),
    [
        ("qp-base64-body.eml", ["anticonstitutionnellement", "\nDessert follows", "Café crème brûlée"], ["=\n"]),
        ("alternative-qp.eml", ["Die Straße ist wieder offen, der Weg", "Grüße\nBernd"], ["&auml;"]),
        (
            "html-only.eml",
            ["Flash sale: café & crème", "Ends tonight", "Item Price"],
            ["secret-tracker", "hidden-style-font", "Hidden title text", "also hidden", "<div>", "comment"],
        ),
        (
            "newsletter.eml",
            ["Save 20% on everything & more.", "This week at Example Shop"],
            ["Weekly digest", "display: none"],
        ),
        ("inline-image-cid.eml", ["What do you think of this?"], ["cid:", "iVBOR"]),
        ("invoice-pdf.eml", ["Amount due: 42.00 EUR"], ["PDF", "JVBER"]),
        ("bounce.eml", ["could not\nbe delivered"], ["unique-original-phrase", "Final-Recipient"]),
        ("forwarded-attached.eml", ["Forwarding this as an attachment."], ["unique-original-phrase"]),
        ("nul-byte.eml", ["\x00 NUL byte", "findme"], []),
        (
            "github-notification.eml",
            ["points at load_config().", "—\nReply to this email directly."],
            ["user-mention", "<code>"],
        ),
    ],
)
def test_body_text_is_the_decoded_visible_text_of_non_attachment_text_parts(
    name: str, present: list[str], absent: list[str]
) -> None:
    body = fixture(name).body_text()
    for text in present:
        assert text in body
    for text in absent:
        assert text not in body


def test_body_text_uses_lf_line_endings() -> None:
    assert "\r" not in fixture("github-notification.eml").body_text()


def test_a_text_part_with_disposition_attachment_is_not_body_text() -> None:
    raw = b"""Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nvisible\r\n--b\r
Content-Type: text/plain\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\nattached notes\r\n--b--\r\n"""
    msg = MessageView.from_bytes(raw)
    assert "visible" in msg.body_text()
    assert "attached notes" not in msg.body_text()
    assert msg.has_attachment()


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("a<br>b<br/>c", "a\nb\nc"),
        ("<b>bold</b>   and\n\n  <i>italic</i>", "bold and italic"),
        ("&lt;tag&gt; &amp; &#8364; &euro;", "<tag> & € €"),
        ("<head><title>t</title><style>p{}</style></head><body>seen</body>", "seen"),
        ("<html><head><title>x</title><body>no closing head</body>", "no closing head"),
        ("<script>alert(1)</script>after", "after"),
        ("<p>text</p><pre>  keep\n    spacing</pre>", "text\n\n  keep\n    spacing"),
        ("<ul><li>one<li>two</ul>", "one\ntwo"),
        ("<p>unclosed <b>markup", "unclosed markup"),
    ],
)
def test_html_becomes_its_visible_text(html: str, text: str) -> None:
    assert html_to_text(html, []) == text


def test_a_bad_charset_label_is_read_as_utf8_with_a_warning() -> None:
    msg = fixture("bad-charset.eml")
    assert "Die Rechnung über 12 € ist offen." in msg.body_text()
    assert any("x-no-such-charset" in warning for warning in msg.warnings)


def test_undecodable_bytes_in_a_known_charset_are_replaced_with_a_warning() -> None:
    msg = MessageView.from_bytes(b"Content-Type: text/plain; charset=utf-8\r\n\r\nbad \xff byte")
    assert msg.body_text() == "bad \ufffd byte"
    assert msg.warnings


def test_text_without_a_charset_is_read_as_utf8_else_latin1() -> None:
    assert MessageView.from_bytes("\r\nGrüße".encode()).body_text() == "Grüße"
    assert MessageView.from_bytes("\r\nGrüße".encode("latin-1")).body_text() == "Grüße"


def test_text_is_every_decoded_header_line_and_then_the_body() -> None:
    text = fixture("encoded-words.eml").text()
    assert "Subject: Grüße aus Köln und mehr\n" in text
    assert text.endswith("\n\nGrüße aus Köln!\n")


def test_the_body_of_a_header_only_fetch_is_not_known() -> None:
    msg = header_only("Subject: x")
    assert not msg.has_full
    with pytest.raises(NotFetched):
        msg.body_text()
    with pytest.raises(NotFetched):
        msg.has_attachment()


def test_a_fetched_full_message_gives_body_and_its_own_headers() -> None:
    raw = (FIXTURES / "invoice-pdf.eml").read_bytes()
    msg = MessageView.from_parts(header=b"", size=len(raw), internaldate=None, flags=(), full=raw)
    assert msg.subject == "Invoice 2026-1101 for October"
    assert "Amount due" in msg.body_text()


# ---------------------------------------------------------------- attachments


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("invoice-pdf.eml", True),
        ("inline-image-named.eml", True),  # a non-text part with a file name
        ("inline-image-cid.eml", False),  # an inline image without a file name
        ("forwarded-attached.eml", True),
        ("truncated-mime.eml", True),  # application/octet-stream with a Content-Type name
        ("alternative-qp.eml", False),
        ("bounce.eml", False),  # message/rfc822 without a disposition or a name
        ("github-notification.eml", False),
    ],
)
def test_has_attachment_follows_section_7(name: str, expected: bool) -> None:
    assert fixture(name).has_attachment() is expected


def test_the_fetched_attachment_answer_is_used_when_given() -> None:
    assert header_only("Subject: x", has_attachment=True).has_attachment() is True


# ---------------------------------------------------------------- malformed mail never raises


@pytest.mark.parametrize(
    ("name", "body_part", "warning_part"),
    [
        ("truncated-mime.eml", "The first part survived the truncation.", "close boundary not found"),
        ("multipart-no-boundary.eml", "yet its words are readable.", "no boundary"),
        ("nested-100.eml", "The innermost text of the doll.", None),
    ],
)
def test_malformed_mime_is_read_as_far_as_possible(name: str, body_part: str, warning_part: str | None) -> None:
    msg = fixture(name)
    assert body_part in msg.body_text()
    if warning_part:
        assert any(warning_part in warning for warning in msg.warnings)


def nested_multiparts(depth: int) -> bytes:
    opening = "".join(f'Content-Type: multipart/mixed; boundary="l{i}"\n\n--l{i}\n' for i in range(depth))
    closing = "".join(f"--l{i}--\n" for i in reversed(range(depth)))
    return f"Subject: deep\n{opening}Content-Type: text/plain\n\ninnermost\n{closing}".encode()


def test_nesting_too_deep_for_the_parser_falls_back_to_plain_text_with_a_warning() -> None:
    msg = MessageView.from_bytes(nested_multiparts(2000))
    assert "innermost" in msg.body_text()
    assert msg.has_attachment() is False
    assert any("could not be read" in warning for warning in msg.warnings)


def test_a_one_megabyte_header_line_is_read() -> None:
    raw = b"From: a@example.org\r\nX-Big: " + b"x" * (1 << 20) + b"\r\nSubject: after\r\n\r\nbody"
    msg = MessageView.from_bytes(raw)
    assert (msg.subject, len(msg.header_values("X-Big")[0]), msg.body_text()) == ("after", 1 << 20, "body")


def test_long_header_fixture_keeps_every_reference() -> None:
    references = fixture("long-header.eml").header_values("References")[0]
    assert references.count("<ref-") == 3000


def test_nul_bytes_are_kept_in_header_values() -> None:
    assert fixture("nul-byte.eml").subject == "Null\x00byte inside"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_reading_arbitrary_bytes_never_raises(raw: bytes, as_multipart: bool) -> None:
    if as_multipart:
        raw = b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n" + raw
    msg = MessageView.from_bytes(raw)
    msg.body_text(), msg.text(), msg.has_attachment(), msg.sent_date(), msg.addresses("From"), msg.header_items()


# ---------------------------------------------------------------- flags


def test_flags_are_canonical_and_case_insensitive_keywords_are_one_flag() -> None:
    msg = message("Subject: x", flags=["seen", "\\FLAGGED", "$Label", "$label"])
    assert sorted(msg.flags) in (["$Label", "\\Flagged", "\\Seen"], ["$label", "\\Flagged", "\\Seen"])
    assert msg.flag_keys() == {"\\seen", "\\flagged", "$label"}


def test_with_flags_changes_only_the_flags() -> None:
    msg = fixture("invoice-pdf.eml", flags=["seen"])
    flagged = msg.with_flags(["flagged", "$Invoice"])
    assert flagged.flags == {"\\Flagged", "$Invoice"}
    assert (flagged.size, flagged.internaldate, flagged.subject) == (msg.size, msg.internaldate, msg.subject)
    assert msg.flags == {"\\Seen"}


def test_header_names_lists_each_name_once_as_first_written() -> None:
    msg = MessageView.from_bytes(b"Received: a\nsubject: x\nReceived: b\nSubject: y\nTo: z\n\nbody")
    assert msg.header_names() == ["Received", "subject", "To"]


def test_the_whole_message_decides_has_attachment_when_it_is_known() -> None:
    raw = (FIXTURES / "invoice-pdf.eml").read_bytes()
    msg = MessageView.from_parts(header=b"", size=len(raw), internaldate=None, flags=(), full=raw, has_attachment=False)
    assert msg.has_attachment() is True
