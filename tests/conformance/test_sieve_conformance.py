"""The exported Sieve script files each message as mailrules does (Pigeonhole's sieve-test decides).

Every rule set of ``cases.py`` meets every message of ``messages/``.  Where the two
legitimately differ the pair is listed in ``cases.DIFFERENCES`` with the reason, and the
test insists that they still differ: a difference that disappears must leave the list.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from mailrules.model import AddFlags
from tests.conformance.cases import CASES, DIFFERENCES, MESSAGES, PROBES_MATCHING_NOTHING, message_names
from tests.conformance.differential import all_pairs, compare, engine_outcome
from tests.conformance.pigeonhole import Pigeonhole, require_pigeonhole

AGREEING = [pair for pair in all_pairs() if pair not in DIFFERENCES]


@pytest.fixture(scope="module")
def pigeonhole() -> Iterator[Pigeonhole]:
    require_pigeonhole()
    with Pigeonhole() as tools:
        yield tools


@pytest.mark.parametrize("case, message", AGREEING, ids=[f"{case}-{message}" for case, message in AGREEING])
def test_sieve_files_the_message_like_mailrules(pigeonhole: Pigeonhole, case: str, message: str) -> None:
    result = compare(pigeonhole, case, message)
    assert result.sieve == result.engine, f"engine: {result.engine}\nsieve:  {result.sieve}"


@pytest.mark.parametrize("case, message", list(DIFFERENCES), ids=[f"{case}-{message}" for case, message in DIFFERENCES])
def test_documented_difference_is_real(pigeonhole: Pigeonhole, case: str, message: str) -> None:
    result = compare(pigeonhole, case, message)
    assert result.sieve != result.engine, f"no longer differs, drop it from DIFFERENCES: {DIFFERENCES[case, message]}"


def test_every_difference_names_a_real_pair() -> None:
    assert set(DIFFERENCES) <= {(case, message) for case in CASES for message in message_names()}


def test_every_probe_matches_some_message() -> None:
    """A probe that matches nothing compares nothing, unless it is built to match nothing."""
    now = datetime.now(timezone.utc)
    for case, ruleset in CASES.items():
        matched = set()
        for message in message_names():
            outcome = engine_outcome(ruleset, (MESSAGES / message).read_bytes(), now)
            matched |= {flag for flags in outcome.stored.values() for flag in flags}
        probes = {rule.name for rule in ruleset.rules if rule.then == (AddFlags((f"${rule.name}",)),)}
        assert {name for name in probes if f"${name}".lower() not in matched} == PROBES_MATCHING_NOTHING.get(case, set())
