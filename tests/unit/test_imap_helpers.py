"""The pure parts of the IMAP backend: SEARCH encoding, BODYSTRUCTURE, COPYUID, FETCH items."""

from __future__ import annotations

import imaplib
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from mailrules.backends.base import CopyResult, FetchNeeds
from mailrules.backends.imap import ImapMailbox, refuses_charset
from mailrules.backends.imap_wire import (
    bodystructure_has_attachment,
    fetch_items,
    merge_copy_results,
    parse_copyuid,
    search_tokens,
)
from mailrules.errors import BackendError, CapabilityError, ConnectionLost

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("criteria", "tokens"),
    [
        (["UNSEEN"], [b"UNSEEN"]),
        (["FROM", "bob@example.org"], [b"FROM", b"bob@example.org"]),
        (["SUBJECT", "two words"], [b"SUBJECT", b'"two words"']),
        (["SUBJECT", "(urgent)"], [b"SUBJECT", b'"(urgent)"']),
        (["SUBJECT", "50%"], [b"SUBJECT", b'"50%"']),
        (["SUBJECT", 'say "hi" \\o/'], [b"SUBJECT", b'"say \\"hi\\" \\\\o/"']),
        (["SUBJECT", ""], [b"SUBJECT", b'""']),
        (["HEADER", "X-Spam-Flag", "YES"], [b"HEADER", b"X-Spam-Flag", b"YES"]),
        (["LARGER", 5242880], [b"LARGER", b"5242880"]),
        (["SINCE", date(2025, 1, 1)], [b"SINCE", b"1-Jan-2025"]),
        (["BEFORE", datetime(2025, 12, 31, 23, 0, tzinfo=timezone.utc)], [b"BEFORE", b"31-Dec-2025"]),
        (["UID", "5:*"], [b"UID", b"5:*"]),
        (["KEYWORD", "$Invoice"], [b"KEYWORD", b"$Invoice"]),
        (["OR", ["FROM", "a"], ["NOT", ["FROM", "b"]]], [b"OR", b"(FROM", b"a)", b"(NOT", b"(FROM", b"b))"]),
        ([["SEEN"]], [b"(SEEN)"]),
        ([[]], [b"(ALL)"]),
    ],
)
def test_search_tokens_quote_only_what_is_not_an_atom(criteria: list[object], tokens: list[bytes]) -> None:
    assert search_tokens(criteria) == tokens


def test_non_ascii_stays_utf8_and_never_ends_a_group() -> None:
    assert search_tokens(["OR", ["SUBJECT", "Grüße"], ["FROM", "jürgen"]]) == [
        b"OR", b"(SUBJECT", "Grüße".encode(), b"ALL)", b"(FROM", "jürgen".encode(), b"ALL)",
    ]
    assert search_tokens(["SUBJECT", "Grüße"]) == [b"SUBJECT", "Grüße".encode()]


@pytest.mark.parametrize("value", ["line\r\nbreak", "nul\0byte", True])
def test_what_search_cannot_carry_is_a_capability_error(value: object) -> None:
    with pytest.raises(CapabilityError):
        search_tokens(["SUBJECT", value])


def text_part(**disposition: object) -> tuple[object, ...]:
    return (b"text", b"plain", (b"charset", b"utf-8"), None, None, b"7bit", 10, 1, None,
            disposition.get("disposition"), None, None)


def part(main: bytes, sub: bytes, params: tuple[bytes, ...] | None = None,
         disposition: tuple[object, ...] | None = None) -> tuple[object, ...]:
    return (main, sub, params, None, None, b"base64", 100, None, disposition, None, None)


ATTACHED_MESSAGE_WITH_PDF = (
    b"message", b"rfc822", None, None, None, b"7bit", 500,
    (None,) * 10,  # envelope
    ([part(b"application", b"pdf", (b"name", b"inner.pdf"))], b"mixed"),  # its body
    20, None, None, None, None,
)


@pytest.mark.parametrize(
    ("structure", "expected"),
    [
        (text_part(), False),
        (text_part(disposition=(b"attachment", None)), True),
        (text_part(disposition=(b"inline", (b"filename", b"notes.txt"))), False),
        (part(b"application", b"pdf", (b"name", b"invoice.pdf")), True),
        (part(b"image", b"png", None, (b"inline", (b"filename", b"logo.png"))), True),
        (part(b"image", b"png", None, (b"INLINE", (b"FILENAME*", b"utf-8''logo.png"))), True),
        (part(b"image", b"png", None, (b"inline", (b"filename*0*", b"utf-8''lo"))), True),
        (part(b"image", b"png", (b"namespace", b"x")), False),
        (part(b"image", b"png"), False),
        (([text_part(), part(b"image", b"png")], b"related"), False),
        (([text_part(), ([text_part(), part(b"application", b"zip", (b"name", b"a.zip"))], b"mixed")], b"mixed"),
         True),
        (([text_part(), ATTACHED_MESSAGE_WITH_PDF], b"mixed"), False),
        (([text_part(), ATTACHED_MESSAGE_WITH_PDF[:11] + ((b"attachment", None),) + (None, None)], b"mixed"), True),
        (([text_part()], b"mixed", None, (b"attachment", None)), True),
        ((text_part(), part(b"application", b"pdf", (b"name", b"raw.pdf")), b"mixed"), True),  # plain tuples
    ],
)
def test_attachments_from_bodystructure(structure: tuple[object, ...], expected: bool) -> None:
    assert bodystructure_has_attachment(structure) is expected


def test_copyuid_codes_become_a_uid_map() -> None:
    assert parse_copyuid([b"77 1:3,9 100:102,110"]) == CopyResult(77, {1: 100, 2: 101, 3: 102, 9: 110})
    assert parse_copyuid([b"77 1:3 100:101"]) == CopyResult(None, {})  # inconsistent: trust nothing
    assert parse_copyuid([b"garbage"]) == CopyResult(None, {})


def test_chunked_copies_merge_into_one_result() -> None:
    merged = merge_copy_results([CopyResult(5, {1: 10}), CopyResult(5, {2: 11}), CopyResult(None, {})])
    assert merged == CopyResult(5, {1: 10, 2: 11})
    assert merge_copy_results([CopyResult(5, {1: 10}), CopyResult(6, {2: 11})]).dest_uidvalidity is None


@pytest.mark.parametrize(
    ("needs", "section"),
    [
        (FetchNeeds(), None),
        (FetchNeeds(headers=frozenset({"list-id", "from"})), "BODY.PEEK[HEADER.FIELDS (FROM LIST-ID)]"),
        (FetchNeeds(headers=frozenset({"from"}), all_headers=True), "BODY.PEEK[HEADER]"),
        (FetchNeeds(headers=frozenset({"from"}), body=True), "BODY.PEEK[]"),
    ],
)
def test_fetch_items_always_peek(needs: FetchNeeds, section: str | None) -> None:
    items = fetch_items(needs)
    assert items[:4] == ["UID", "RFC822.SIZE", "INTERNALDATE", "FLAGS"]
    assert items[4:] == ([section] if section else [])
    assert not any(item.startswith("BODY[") for item in items)


def test_the_password_stays_out_of_repr_and_label() -> None:
    box = ImapMailbox("mail.example.org", username="alice", password="hunter2", tls="starttls")
    assert "hunter2" not in repr(box) + box.label
    assert box.label == "imap://alice@mail.example.org:143"


def test_an_unknown_tls_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="tls must be one of"):
        ImapMailbox("h", username="u", password="p", tls="maybe")  # type: ignore[arg-type]


def test_importing_the_backend_does_not_load_imapclient() -> None:
    code = "import sys, mailrules.backends.imap; print('imapclient' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "False"


def refusal(server_said: str) -> BackendError:
    try:
        raise BackendError("refused") from imaplib.IMAP4.error(server_said)
    except BackendError as exc:
        return exc


@pytest.mark.parametrize(
    ("server_said", "refuses"),
    [
        ("SEARCH failed: [BADCHARSET (US-ASCII)] Unsupported charset", True),
        ("SEARCH command error: BAD [b'Error in IMAP command UID SEARCH: Unknown argument']", True),
        ("SEARCH failed: No mailbox selected", False),
    ],
)
def test_only_a_charset_refusal_asks_for_the_ascii_fallback(server_said: str, refuses: bool) -> None:
    assert refuses_charset(refusal(server_said)) is refuses
    assert refuses_charset(ConnectionLost("gone")) is False
