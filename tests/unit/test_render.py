"""Plan tables a person reads: senders cut at a boundary, elided matches counted."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from mailrules.plan import FolderPlan, MessageSummary, Plan, RuleSummary
from mailrules.render import SENDER_WIDTH, clip_sender, clip_words, render_plan

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)


def plan_with(summary: RuleSummary) -> Plan:
    folder = FolderPlan("INBOX", 7, 10, 9, 1, 9)
    return Plan("t", NOW, False, (folder,), (summary,))


def example(uid: int, sender: str, subject: str = "hello") -> MessageSummary:
    return MessageSummary(uid, "2026-11-19 08:00", sender, subject)


def test_a_long_sender_keeps_its_whole_address() -> None:
    sender = "ACME Billing Department <billing@acme-hosting.example>"
    text = render_plan(plan_with(RuleSummary("invoices", 1, (example(1, sender),))))
    line = next(line for line in text.splitlines() if "billing@" in line)
    assert "<billing@acme-hosting.example>" in line
    assert "ACME… <billing@acme-hosting.example>" in line


@pytest.mark.parametrize("sender", [
    "ACME Billing Department <billing@acme-hosting.example>",
    "Someone With A Long Name <a-very-long-address@subdomain.example.org>",
    "Ünïcode Ñame With Many Words In It <x@y.example>",
    "undisclosed-recipients-with-a-very-long-name-and-no-address-at-all",
    "A very long display name without any address at all and more words",
    "some.person.with.a.long.name@mail.department.example.org",
])
def test_clipped_senders_fit_and_end_at_a_boundary(sender: str) -> None:
    clipped = clip_sender(sender, SENDER_WIDTH)
    assert len(clipped) <= SENDER_WIDTH and "…" in clipped
    assert clipped.count("<") == clipped.count(">")  # never half an address
    if clipped.endswith(">") and not clipped.startswith("<"):
        assert sender.endswith(clipped.split("… ", 1)[1])  # the whole address, as given
    kept = clipped.split("…")[0].lstrip("<")
    source = sender[sender.index("<") + 1:] if clipped.startswith("<") else sender
    assert source.startswith(kept)
    after = source[len(kept):len(kept) + 1]
    assert kept[-1] in "@.-_+" or after in (" ", "@", ".", "-", "_", "+")  # a word's end, not its middle


def test_words_are_cut_between_words() -> None:
    assert clip_words("Invoice 2026-1142 for November", 20) == "Invoice 2026-1142…"
    assert clip_words("short", 20) == "short"


def test_elided_matches_are_counted() -> None:
    examples = tuple(example(uid, f"GitHub <n{uid}@github.com>") for uid in (1, 2, 3))
    text = render_plan(plan_with(RuleSummary("github", 5, examples)))
    lines = text.splitlines()
    last = max(index for index, line in enumerate(lines) if "@github.com" in line)
    assert lines[last + 1].strip() == "… and 2 more"


def test_nothing_is_said_when_every_match_is_shown() -> None:
    examples = tuple(example(uid, f"GitHub <n{uid}@github.com>") for uid in (1, 2))
    assert "more" not in render_plan(plan_with(RuleSummary("github", 2, examples)))
