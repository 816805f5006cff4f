"""A fast reader for the FETCH responses the planner asks for.

imapclient's general response parser is pure Python and token by token: on a folder of
100,000 messages it costs more than evaluating every rule.  The planner's FETCH always has
the same shape — UID, RFC822.SIZE, INTERNALDATE, FLAGS and one body section, whose
contents arrive as a literal imaplib has already cut out — so the atoms around the
literal can be read with a few regular expressions.  Any response of another shape
(BODYSTRUCTURE, a second literal, an unexpected item) goes to the general parser the IMAP
backend passes in (imapclient's), so the result is always the same as imapclient's; a unit
test checks the two against each other.  This module stays pure: only imap.py talks to
imapclient.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

ResponseData = Sequence[bytes | tuple[bytes, bytes]]
Response = list[bytes | tuple[bytes, bytes]]
# Reads one response of any shape: (uid, {item: value}), or None.
GeneralReader = Callable[[Response], "tuple[int, dict[bytes, Any]] | None"]

_START = re.compile(rb"^\d+ \(")
_UID = re.compile(rb"[( ]UID (\d+)")
_SIZE = re.compile(rb"[( ]RFC822\.SIZE (\d+)")
_DATE = re.compile(rb'[( ]INTERNALDATE "([^"]*)"')
_FLAGS = re.compile(rb"[( ]FLAGS \(([^()]*)\)")
_SECTION = re.compile(rb" (BODY\[[^\]]*\](?:<\d+>)?) \{\d+\}$")
_MONTHS = {name: number for number, name in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"), start=1)}
_DATE_PARTS = re.compile(rb"^ ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$")


def parse_fetch(data: ResponseData, general: GeneralReader) -> dict[int, dict[bytes, Any]]:
    """UID -> {item: value}, like ``parse_fetch_response(data, normalise_times=False, uid_is_key=True)``."""
    parsed: dict[int, dict[bytes, Any]] = {}
    for response in _responses(data):
        text = _text(response)
        if _UID.search(text) is None:
            # An unsolicited update from another client (`* 5 FETCH (FLAGS ...)`): its number
            # is a sequence number and must not shadow the message whose UID it equals.
            continue
        item = _fast(response, text) or general(response)
        if item is not None:
            parsed[item[0]] = item[1]
    return parsed


def _text(response: list[bytes | tuple[bytes, bytes]]) -> bytes:
    """The response without its literals' contents."""
    return b" ".join(element[0] if isinstance(element, tuple) else element for element in response)


def _responses(data: ResponseData) -> Iterator[list[bytes | tuple[bytes, bytes]]]:
    """Split imaplib's list into one list per ``* n FETCH (...)`` response."""
    current: list[bytes | tuple[bytes, bytes]] = []
    for element in data:
        if element is None:  # imaplib's answer when nothing matched
            continue
        head = element[0] if isinstance(element, tuple) else element
        if current and _START.match(head) and not _is_continuation(current):
            yield current
            current = []
        current.append(element)
    if current:
        yield current


def _is_continuation(current: list[bytes | tuple[bytes, bytes]]) -> bool:
    """After a literal, the next element is the rest of the same response."""
    return isinstance(current[-1], tuple)


def _fast(response: list[bytes | tuple[bytes, bytes]], text: bytes) -> tuple[int, dict[bytes, Any]] | None:
    literals = [element for element in response if isinstance(element, tuple)]
    if len(literals) > 1:
        return None
    if b"BODYSTRUCTURE" in text or b"{" in text.replace(b"{", b"", 1 if literals else 0):
        return None
    uid, size, date, flags = _UID.search(text), _SIZE.search(text), _DATE.search(text), _FLAGS.search(text)
    if not (uid and size and date and flags):
        return None
    when = parse_internaldate(date.group(1))
    if when is None:
        return None
    item: dict[bytes, Any] = {b"SEQ": int(text.split(b" ", 1)[0]), b"RFC822.SIZE": int(size.group(1)),
                              b"INTERNALDATE": when, b"FLAGS": tuple(flags.group(1).split())}
    if literals:
        section = _SECTION.search(literals[0][0])
        if section is None:
            return None
        item[section.group(1)] = literals[0][1]
    return int(uid.group(1)), item


def parse_internaldate(text: bytes) -> datetime | None:
    """``20-Nov-2026 10:00:00 +0100`` (RFC 3501 date-time) as an aware datetime.

    >>> parse_internaldate(b" 1-Nov-2026 09:05:00 -0230")
    datetime.datetime(2026, 11, 1, 9, 5, tzinfo=datetime.timezone(datetime.timedelta(days=-1, seconds=77400)))
    """
    found = _DATE_PARTS.match(text)
    if found is None:
        return None
    day, month, year, hour, minute, second, sign, zone_hours, zone_minutes = found.groups()
    if month.title() not in _MONTHS:
        return None
    offset = timedelta(hours=int(zone_hours), minutes=int(zone_minutes)) * (-1 if sign == b"-" else 1)
    try:
        return datetime(int(year), _MONTHS[month.title()], int(day), int(hour), int(minute), int(second),
                        tzinfo=timezone(offset))
    except ValueError:
        return None
