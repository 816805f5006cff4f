"""Sizes, durations and days as users write them in rule files.

Each parser returns the value or raises ``ValueError`` whose text is meant for the
user, so callers only add a location.
"""

from __future__ import annotations

import re
from datetime import date, datetime

# Integers only: "1.5M" would need a rounding rule, and "1536K" says the same exactly.
_SIZE = re.compile(r"(?P<number>[0-9]+) ?(?P<unit>[KMG])?B?", re.IGNORECASE)
_SIZE_FACTORS = {None: 1, "K": 1024, "M": 1024**2, "G": 1024**3}
# RFC 9051 number64: the largest size an IMAP SEARCH LARGER/SMALLER can carry.
MAX_SIZE = 2**63 - 1

_DURATION = re.compile(r"(?P<number>[0-9]+) ?(?P<unit>[hdwy])", re.IGNORECASE)
_DURATION_SECONDS = {"h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
# Far enough for "reply once, ever", near enough that now - duration stays a valid datetime.
MAX_DURATION = 1000 * _DURATION_SECONDS["y"]

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_size(value: int | str) -> int:
    """Bytes from ``5M``, ``10K``, ``2G``, ``100B`` or a plain integer (K/M/G are powers of 1024).

    >>> parse_size("5M"), parse_size("10kb"), parse_size(2048)
    (5242880, 10240, 2048)
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"a size must be a whole number of bytes or a text like 5M, not {value!r}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.fullmatch(value.strip())
        if match is None:
            raise ValueError(
                f"{value!r} is not a size: write whole bytes or a whole number with K, M or G, e.g. 500K or 5M"
            )
        unit = match["unit"].upper() if match["unit"] else None
        size = int(match["number"]) * _SIZE_FACTORS[unit]
    if not 0 <= size <= MAX_SIZE:
        raise ValueError(f"size {value!r} is out of range (0 to {MAX_SIZE} bytes)")
    return size


def parse_duration(value: str) -> int:
    """Seconds from ``12h``, ``30d``, ``2w`` or ``1y`` (a year is 365 days).

    >>> parse_duration("30d"), parse_duration("12h"), parse_duration("1y") // 86400
    (2592000, 43200, 365)
    """
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"{value!r} is not a duration: write a whole number with h, d, w or y (365 days), e.g. 30d"
        )
    seconds = int(match["number"]) * _DURATION_SECONDS[match["unit"].lower()]
    if seconds > MAX_DURATION:
        raise ValueError(f"duration {value!r} is too long (at most 1000y)")
    return seconds


def parse_day(value: str | date) -> date:
    """A calendar day from ``YYYY-MM-DD`` (or a date YAML already read).

    >>> parse_day("2025-01-31")
    datetime.date(2025, 1, 31)
    """
    if isinstance(value, datetime):
        raise ValueError(f"expected a day like 2025-01-31, not a date and time ({value.isoformat()})")
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _DAY.fullmatch(value.strip()):
        raise ValueError(f"{value!r} is not a day: write it as YYYY-MM-DD, e.g. 2025-01-31")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a valid calendar day") from None


# ---------------------------------------------------------------- back to words

# No weeks: "7 days" reads as plainly as "1 week", and 2w as "14 days" is easy to check.
_SPOKEN_UNITS = (("year", _DURATION_SECONDS["y"]), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}{'' if number == 1 else 's'}"


def duration_text(seconds: float) -> str:
    """A rule's duration as words, in the largest unit that says it exactly.

    >>> duration_text(30 * 86400), duration_text(14 * 86400), duration_text(36 * 3600), duration_text(0)
    ('30 days', '14 days', '36 hours', '0 seconds')
    >>> duration_text(365 * 86400)
    '1 year'
    """
    whole = round(seconds)
    for unit, size in _SPOKEN_UNITS:
        if whole and whole % size == 0:
            return _count(whole // size, unit)
    return _count(whole, "second")


def age_text(seconds: float) -> str:
    """How long ago something was, to the two largest units of days, hours and minutes.

    >>> age_text(14 * 86400 + 2 * 3600 + 23 * 60 + 33), age_text(3 * 3600 + 5 * 60), age_text(14 * 86400 + 50)
    ('14 days 2 hours', '3 hours 5 minutes', '14 days')
    >>> age_text(42), age_text(-90)
    ('42 seconds', 'in 1 minute')
    """
    if seconds < 0:
        return "in " + age_text(-seconds)
    whole = int(seconds)
    if whole < 60:
        return _count(whole, "second")
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    parts = [(days, "day"), (hours, "hour"), (rest // 60, "minute")]
    first = next(index for index, (number, _) in enumerate(parts) if number)
    shown = [_count(number, unit) for number, unit in parts[first : first + 2] if number]
    return " ".join(shown)


def size_text(size: int) -> str:
    """A size as a rule file would write it: K, M or G when exact, else bytes.

    >>> size_text(5 * 1024**2), size_text(1536 * 1024), size_text(1000), size_text(1)
    ('5 MB', '1536 KB', '1,000 bytes', '1 byte')
    """
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size:,} byte{'' if size == 1 else 's'}"
