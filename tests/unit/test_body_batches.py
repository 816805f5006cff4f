"""Whole-message fetches are batched by bytes (RFC822.SIZE), not by message count."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailrules.backends.imap import BODY_BATCH, BODY_BATCH_BYTES, size_batches

MB = 1024 * 1024


def test_thirty_megabyte_messages_come_one_at_a_time() -> None:
    sized = [(uid, 30 * MB) for uid in range(1, 11)]
    assert size_batches(sized) == [[uid] for uid in range(1, 11)]


def test_small_messages_share_a_batch_up_to_the_count_limit() -> None:
    sized = [(uid, 2_000) for uid in range(1, 1_201)]
    batches = size_batches(sized)
    assert [len(batch) for batch in batches] == [BODY_BATCH, BODY_BATCH, 200]


def test_a_batch_closes_before_the_message_that_would_overflow_it() -> None:
    sized = [(1, 20 * MB), (2, 10 * MB), (3, 5 * MB), (4, 40 * MB), (5, 1)]
    assert size_batches(sized) == [[1, 2], [3], [4], [5]]


def test_nothing_to_fetch() -> None:
    assert size_batches([]) == []


@given(st.lists(st.integers(min_value=0, max_value=80 * MB), max_size=60))
def test_every_uid_once_in_order_and_no_batch_over_the_limit_but_a_lone_giant(sizes: list[int]) -> None:
    sized = list(enumerate(sizes, start=1))
    batches = size_batches(sized)
    assert [uid for batch in batches for uid in batch] == [uid for uid, _ in sized]
    size_of = dict(sized)
    for batch in batches:
        assert 1 <= len(batch) <= BODY_BATCH
        assert len(batch) == 1 or sum(size_of[uid] for uid in batch) <= BODY_BATCH_BYTES
