"""Sizes, durations and days as users write them."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from mailrules.units import MAX_SIZE, parse_day, parse_duration, parse_size

K, M, G = 1024, 1024**2, 1024**3


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (0, 0),
        (1500, 1500),
        ("1500", 1500),
        ("100B", 100),
        ("10K", 10 * K),
        ("10k", 10 * K),
        ("10KB", 10 * K),
        ("5M", 5 * M),
        ("5 MB", 5 * M),
        ("2G", 2 * G),
        ("2gb", 2 * G),
    ],
)
def test_sizes_are_bytes_with_binary_units(text: int | str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["1.5M", "5X", "M", "", "-5", "5 M B", "5MiB", True, None, 2.0, -1, MAX_SIZE + 1])
def test_other_sizes_are_refused_with_a_hint(text: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)  # type: ignore[arg-type]


def test_a_fractional_size_suggests_whole_numbers() -> None:
    with pytest.raises(ValueError, match="e.g. 500K or 5M"):
        parse_size("1.5M")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("12h", 12 * 3600), ("30d", 30 * 86400), ("2w", 14 * 86400), ("1y", 365 * 86400), ("0d", 0), ("30D", 30 * 86400), ("7 d", 7 * 86400)],
)
def test_durations_are_seconds(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", 30, "30m", "1.5d", "d", "", "-1d", "1001y", None])
def test_other_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)  # type: ignore[arg-type]


def test_days_are_iso_dates() -> None:
    assert parse_day("2025-01-31") == date(2025, 1, 31)
    assert parse_day(date(2025, 1, 31)) == date(2025, 1, 31)


@pytest.mark.parametrize("text", ["2025-02-30", "2025-1-31", "31.01.2025", "20250131", "2025-W05-1", "", 20250131])
def test_other_days_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="day"):
        parse_day(text)  # type: ignore[arg-type]


def test_a_date_and_time_is_not_a_day() -> None:
    with pytest.raises(ValueError, match="not a date and time"):
        parse_day(datetime(2025, 1, 31, 12, 0))
