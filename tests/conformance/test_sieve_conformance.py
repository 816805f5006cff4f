"""The exported Sieve script files each message as mailrules does (Pigeonhole's sieve-test decides).

Every rule set of ``cases.py`` meets every message of ``messages/``.  Where the two
legitimately differ the pair is listed in ``cases.DIFFERENCES`` with the reason, and the
test insists that they still differ: a difference that disappears must leave the list.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from mailrules.message import MessageView
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


# §7's has_attachment, written by hand with RFC 5703 tests: Pigeonhole must find the same parts.
ATTACHMENT_PROBE = """require ["imap4flags", "mime", "foreverypart"];
foreverypart {
  if anyof(header :mime :contenttype :is "Content-Disposition" "attachment",
           allof(not header :mime :type :is "Content-Type" ["text", "multipart"],
                 anyof(header :mime :param "filename" :matches "Content-Disposition" "?*",
                       header :mime :param "name" :matches "Content-Type" "?*"))) {
    addflag "$attachment"; break;
  }
}
"""
ATTACHMENT_MESSAGES = message_names()


@pytest.mark.parametrize("message", ATTACHMENT_MESSAGES)
def test_has_attachment_finds_the_parts_pigeonhole_finds(pigeonhole: Pigeonhole, message: str) -> None:
    raw = (MESSAGES / message).read_bytes()
    sieve = "$attachment" in pigeonhole.run(ATTACHMENT_PROBE, raw).stored["INBOX"]
    assert MessageView.from_bytes(raw).has_attachment() is sieve
