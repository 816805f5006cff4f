"""Differential check of the Sieve export: Pigeonhole's ``sieve-test`` against mailrules' engine.

For each rule set and message, the exported script's verdict (folders, the flags stored
with each, redirects) must equal the engine's outcome for the message arriving in INBOX
now.  Run standalone for the figures::

    PYTHONPATH=. python -m tests.conformance.differential
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timezone

from mailrules.engine import evaluate_message
from mailrules.match import EvalContext, envelope_header
from mailrules.message import MessageView, parse_addresses
from mailrules.model import RuleSet, flag_key
from mailrules.sieve import to_sieve
from tests.conformance.cases import CASES, DIFFERENCES, MESSAGES, message_names
from tests.conformance.pigeonhole import Pigeonhole, SieveVerdict, missing_reason


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where the message ends up and with which flags (lower-case keys), and where it is resent."""

    stored: dict[str, frozenset[str]]
    redirects: frozenset[str]

    def __str__(self) -> str:
        places = ", ".join(f"{folder} {sorted(flags)}" for folder, flags in sorted(self.stored.items())) or "nowhere"
        return places + (f"; redirected to {sorted(self.redirects)}" if self.redirects else "")


@dataclass(frozen=True, slots=True)
class Comparison:
    case: str
    message: str
    engine: Outcome
    sieve: Outcome

    @property
    def agree(self) -> bool:
        return self.engine == self.sieve


def engine_outcome(ruleset: RuleSet, raw: bytes, now: datetime) -> Outcome:
    """The engine's verdict for a message delivered into INBOX at ``now``, with no flags yet."""
    message = MessageView.from_bytes(raw, internaldate=now)
    outcome = evaluate_message(ruleset.enabled_rules, message, folder="INBOX", ctx=EvalContext(now=now))
    flags = frozenset(flag_key(flag) for flag in outcome.final_flags)
    return Outcome({folder: flags for folder in outcome.final_folders}, frozenset(a for _, a in outcome.redirects))


# What the envelope is when no header records it: an address no rule names.
UNRECORDED = "unrecorded@envelope.invalid"


def recorded_envelope(raw: bytes) -> tuple[str, str]:
    """(sender, recipient) as the delivery headers record them, the envelope a delivered message had."""
    message = MessageView.from_bytes(raw)

    def recorded(names: tuple[str, ...]) -> str:
        found = envelope_header(names, message)
        addresses = parse_addresses(found[1]) if found else []
        return addresses[0].address if addresses else UNRECORDED

    return recorded(("Return-Path",)), recorded(("Delivered-To", "X-Original-To"))


def sieve_outcome(verdict: SieveVerdict) -> Outcome:
    stored = {folder: frozenset(flag_key(flag) for flag in flags) for folder, flags in verdict.stored.items()}
    return Outcome(stored, frozenset(verdict.redirects))


def compare(tools: Pigeonhole, case: str, message: str, now: datetime | None = None) -> Comparison:
    ruleset = CASES[case]
    raw = (MESSAGES / message).read_bytes()
    engine = engine_outcome(ruleset, raw, now or datetime.now(timezone.utc))
    sieve = sieve_outcome(tools.run(to_sieve(ruleset), raw, recorded_envelope(raw)))
    return Comparison(case, message, engine, sieve)


def all_pairs() -> list[tuple[str, str]]:
    return [(case, message) for case in CASES for message in message_names()]


def main() -> int:
    reason = missing_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    unexpected = 0
    with Pigeonhole() as tools:
        results = [compare(tools, case, message) for case, message in all_pairs()]
    for result in results:
        documented = DIFFERENCES.get((result.case, result.message))
        if result.agree and documented is None:
            continue
        verdict = "documented difference" if documented and not result.agree else "UNEXPECTED"
        unexpected += verdict == "UNEXPECTED"
        print(f"{verdict}: {result.case} / {result.message}\n  engine: {result.engine}\n  sieve:  {result.sieve}")
        if documented:
            print(f"  why: {documented}")
    agreed = sum(result.agree for result in results)
    print(f"{len(results)} compared, {agreed} agree, {len(results) - agreed} differ "
          f"({len(DIFFERENCES)} documented), {unexpected} unexpected")
    return 1 if unexpected else 0


if __name__ == "__main__":
    raise SystemExit(main())
