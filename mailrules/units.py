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
