"""UID sets: compact text for commands, split under a size budget, parsed back in order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailrules.uidset import batched, parse_uid_set, uid_ranges, uid_set

uid_lists = st.lists(st.integers(min_value=1, max_value=2**32 - 1), max_size=300)


@pytest.mark.parametrize(
    ("uids", "expected"),
    [
        ([1], "1"),
        ([3, 2, 1], "1:3"),
        ([1, 2, 3, 5, 7, 8, 9, 20], "1:3,5,7:9,20"),
        ([4, 4, 4], "4"),
        ([], ""),
    ],
)
def test_uid_set_is_compact_and_sorted(uids: list[int], expected: str) -> None:
    assert uid_set(uids) == expected


def test_ranges_stay_under_the_budget_and_cover_every_uid() -> None:
    uids = list(range(1, 20001, 2))  # nothing consecutive: the worst case for compaction
    chunks = uid_ranges(uids, max_chars=1000)
    assert len(chunks) > 1
    assert all(len(chunk) <= 1000 for chunk in chunks)
    assert [uid for chunk in chunks for uid in parse_uid_set(chunk)] == uids


def test_default_budget_fits_a_long_run_of_scattered_uids_in_few_commands() -> None:
    chunks = uid_ranges(range(1_000_000, 1_006_000, 2))  # 3,000 seven-digit UIDs
    assert len(chunks) == 3
    assert all(len(chunk) <= 8000 for chunk in chunks)


def test_a_budget_smaller_than_one_range_is_refused() -> None:
    with pytest.raises(ValueError, match="budget"):
        uid_ranges([123456, 123457], max_chars=5)


@given(uid_lists, st.integers(min_value=25, max_value=200))
def test_round_trip(uids: list[int], budget: int) -> None:
    chunks = uid_ranges(uids, max_chars=budget)
    assert all(len(chunk) <= budget for chunk in chunks)
    assert sorted(uid for chunk in chunks for uid in parse_uid_set(chunk)) == sorted(set(uids))


@given(uid_lists.filter(bool))
def test_one_set_names_exactly_the_uids(uids: list[int]) -> None:
    assert parse_uid_set(uid_set(uids)) == sorted(set(uids))


def test_parse_keeps_the_order_copyuid_pairs_depend_on() -> None:
    assert parse_uid_set("10,3:4") == [10, 3, 4]
    assert parse_uid_set("7:5") == [5, 6, 7]


@pytest.mark.parametrize("text", ["", "1:*", "a", "1,,2", "-3", "1:2:3"])
def test_parse_refuses_what_is_not_a_uid_set(text: str) -> None:
    with pytest.raises(ValueError, match="not a UID set"):
        parse_uid_set(text)


def test_batches_are_sorted_unique_and_bounded() -> None:
    assert list(batched([9, 1, 5, 5, 3, 7], 2)) == [[1, 3], [5, 7], [9]]
    assert list(batched([], 10)) == []
