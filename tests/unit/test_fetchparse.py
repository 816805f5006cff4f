"""The fast FETCH reader gives exactly what imapclient's general parser gives."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from imapclient.response_parser import parse_fetch_response

from mailrules.backends.fetchparse import parse_fetch, parse_internaldate
from mailrules.backends.imap import general_fetch_item

HEADER = b"From: a@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= {curly} (paren)\r\n\r\n"

CASES = {
    "headers": [
        (b'1 (UID 11 RFC822.SIZE 2345 INTERNALDATE "20-Nov-2026 10:00:00 +0100" FLAGS (\\Seen $Invoice) '
         b'BODY[HEADER.FIELDS (FROM SUBJECT)] {%d}' % len(HEADER), HEADER), b")",
        (b'2 (UID 12 RFC822.SIZE 99 INTERNALDATE " 1-Jan-2025 00:00:01 -0530" FLAGS () '
         b'BODY[HEADER.FIELDS (FROM SUBJECT)] {%d}' % len(HEADER), HEADER), b")",
    ],
    "flags after the literal": [
        (b'3 (UID 7 RFC822.SIZE 10 INTERNALDATE "02-Feb-2026 23:59:59 +0000" BODY[HEADER] {%d}' % len(HEADER),
         HEADER), b" FLAGS (\\Answered \\Flagged))",
    ],
    "no literal": [b'4 (UID 8 RFC822.SIZE 10 INTERNALDATE "02-Feb-2026 23:59:59 +0000" FLAGS (\\Seen))'],
    "whole message": [
        (b'5 (UID 9 RFC822.SIZE 120 INTERNALDATE "02-Feb-2026 23:59:59 +0000" FLAGS () BODY[] {%d}'
         % len(HEADER + b"body\r\n"), HEADER + b"body\r\n"), b")",
    ],
    "bodystructure goes to the general parser": [
        (b'6 (UID 10 RFC822.SIZE 120 INTERNALDATE "02-Feb-2026 23:59:59 +0000" FLAGS () BODY[HEADER] {%d}'
         % len(HEADER), HEADER),
        b' BODYSTRUCTURE ("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 5 1 NIL NIL NIL NIL))',
    ],
}


@pytest.mark.parametrize("name", CASES)
def test_the_fast_reader_agrees_with_imapclient(name: str) -> None:
    data = CASES[name]
    expected = dict(parse_fetch_response(data, normalise_times=False, uid_is_key=True))
    assert parse_fetch(data, general_fetch_item) == expected


def test_an_unsolicited_update_without_a_uid_does_not_shadow_a_message() -> None:
    data = [b"12 (FLAGS (\\Deleted))", *CASES["headers"]]
    assert sorted(parse_fetch(data, general_fetch_item)) == [11, 12]
    assert parse_fetch(data, general_fetch_item)[12][b"RFC822.SIZE"] == 99


def test_no_match_is_an_empty_answer() -> None:
    assert parse_fetch([None], general_fetch_item) == {}  # type: ignore[list-item]


def test_internaldate_keeps_its_zone() -> None:
    moment = parse_internaldate(b"20-Nov-2026 10:00:00 +0100")
    assert moment == datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
    assert moment.utcoffset() == timedelta(hours=1)
    assert parse_internaldate(b"31-Feb-2026 10:00:00 +0100") is None
