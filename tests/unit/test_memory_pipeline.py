"""Planner, executor, renderer and replies against the in-memory mailbox: fast, no server.

The same pipeline as ``mailrules run`` (recover what a cut-off run left, plan, execute),
with a fault at every mutating operation, before or after the store changes: the run
that follows always ends where an uninterrupted run ends, nothing lost or duplicated.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from mailrules.backends.base import Features, Mailbox
from mailrules.errors import ConnectionLost, StalePlanError
from mailrules.execute import RunReport, execute_plan, find_late_duplicates, recover
from mailrules.journal import StateJournal, StateReader
from mailrules.loader import load_ruleset
from mailrules.model import RuleSet
from mailrules.plan import Plan, Send
from mailrules.planner import PlanOptions, build_plan
from mailrules.render import render_plan, render_run_start
from mailrules.reply import Identity, SendPlanner, template_root
from mailrules.state import State
from tests.support.memory import Crash, Faults, MemoryMailbox, MemoryStore

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
ACCOUNT = "memory"
RULES = """\
version: 1
rules:
  - name: github
    when: {from: {domain: github.com}}
    then: [{move: Notifications}]
  - name: invoices
    when: {subject: {contains: invoice}}
    then: [{flag: flagged}, {copy: Finance}]
  - name: old
    when: {subject: {contains: expired}}
    then: [delete]
  - name: thanks
    when: {subject: {contains: question}}
    then: [{reply: {body: "Thanks, {{ message.from }}: we read every message."}}]
"""


def mail(sender: str, subject: str, number: int) -> bytes:
    return (f"From: {sender}\r\nTo: me@example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <m{number}@example.net>\r\nDate: Thu, 19 Nov 2026 10:00:00 +0000\r\n\r\nHello\r\n").encode()


def seeded() -> MemoryStore:
    store = MemoryStore()
    for name in ("INBOX", "Notifications", "Finance"):
        store.folder(name)
    for number, (sender, subject) in enumerate([
        ("noreply@github.com", "PR merged"), ("ann@shop.example", "Your invoice 12"),
        ("bob@example.net", "expired offer"), ("noreply@github.com", "invoice for Actions"),
        ("carol@example.net", "a question"), ("dave@example.net", "lunch?"),
    ], start=1):
        store.deliver("INBOX", mail(sender, subject, number))
    return store


class Outbox:
    """Records what would go out by SMTP (the SMTP side has its own tests against aiosmtpd)."""

    def __init__(self) -> None:
        self.sent: list[Send] = []

    def send(self, send: Send, mailbox: Mailbox) -> None:
        self.sent.append(send)


@pytest.fixture()
def ruleset(tmp_path: Path) -> RuleSet:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return load_ruleset(path).ruleset


def plan_of(ruleset: RuleSet, mailbox: MemoryMailbox, state: State) -> Plan:
    identity = Identity(ACCOUNT, ("me@example.org",))
    send_planner = SendPlanner(identity, {rule.name: rule for rule in ruleset.rules},
                               {rule.name: template_root(rule) for rule in ruleset.rules}, NOW,
                               last_reply=lambda rule, sender: state.last_reply(ACCOUNT, rule, sender))
    return build_plan(ruleset, mailbox, PlanOptions(now=NOW), state=StateReader(state, ACCOUNT),
                      prepare_send=send_planner)


def run(ruleset: RuleSet, mailbox: MemoryMailbox, state: State, outbox: Outbox) -> RunReport:
    """What ``mailrules run`` does between opening the mailbox and printing the report."""
    journal = StateJournal(state, ACCOUNT, NOW)
    pending = journal.pending()
    if pending:
        recover(mailbox, journal, pending)
    find_late_duplicates(mailbox, journal)
    plan = plan_of(ruleset, mailbox, state)
    journal.begin(plan)
    report = execute_plan(plan, mailbox, journal, sender=outbox)
    journal.finish("ok", {})
    return report


def settled(store: MemoryStore) -> dict[str, list[tuple[bytes, frozenset[str]]]]:
    return {folder: sorted(messages, key=lambda item: (item[0], sorted(item[1])))
            for folder, messages in store.contents().items()}


def subjects(store: MemoryStore, folder: str) -> list[str]:
    return sorted(raw.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode() for raw, _ in store.contents()[folder])


def test_the_plan_and_the_run(tmp_path: Path, ruleset: RuleSet) -> None:
    store, outbox = seeded(), Outbox()
    state = State(tmp_path / "state.sqlite3")
    before = store.contents()
    plan = plan_of(ruleset, MemoryMailbox(store), state)
    assert store.contents() == before  # planning changes nothing
    [inbox] = plan.folders
    assert [(move.destination, move.uids) for move in inbox.moves] == [("Notifications", (1, 4))]
    assert [(copy.destination, copy.uids) for copy in inbox.copies] == [("Finance", (2,))]
    assert inbox.deletions == (3,)
    report = run(ruleset, MemoryMailbox(store), state, outbox)
    assert not report.failures and not report.warnings
    assert subjects(store, "INBOX") == ["Your invoice 12", "a question", "lunch?"]
    assert subjects(store, "Notifications") == ["PR merged", "invoice for Actions"]
    assert subjects(store, "Finance") == ["Your invoice 12"]
    assert [(send.kind, send.recipient) for send in outbox.sent] == [("reply", "carol@example.net")]
    flagged = [flags for raw, flags in store.contents()["INBOX"] if b"Your invoice" in raw]
    assert flagged == [frozenset({"\\Flagged"})]


def test_a_second_run_changes_nothing_and_answers_no_one_twice(tmp_path: Path, ruleset: RuleSet) -> None:
    store, outbox = seeded(), Outbox()
    state = State(tmp_path / "state.sqlite3")
    run(ruleset, MemoryMailbox(store), state, outbox)
    after_first = store.contents()
    again = MemoryMailbox(store)
    plan = plan_of(ruleset, again, state)
    assert not plan.has_work, render_plan(plan)
    run(ruleset, again, state, outbox)
    assert store.contents() == after_first and len(outbox.sent) == 1
    assert again.calls == []


def test_the_renderer_says_what_plan_and_run_will_change(tmp_path: Path, ruleset: RuleSet) -> None:
    plan = plan_of(ruleset, MemoryMailbox(seeded()), State(tmp_path / "state.sqlite3"))
    text, start = render_plan(plan), render_run_start(plan)
    assert text.splitlines()[0] == "Plan for memory:test at 2026-11-20 10:00 UTC (full scan)"
    assert text.endswith("Would change 5 message(s); `mailrules run` does exactly this.")
    assert start.endswith("Changing 5 message(s):")
    assert text.rsplit("\n", 1)[0] == start.rsplit("\n", 1)[0]  # one plan, two closing lines
    assert "Notifications" in text and "Finance" in text
    assert "Thanks, carol@example.net: we read every message." in text


def test_without_move_the_executor_copies_then_removes(tmp_path: Path, ruleset: RuleSet) -> None:
    store, outbox = seeded(), Outbox()
    mailbox = MemoryMailbox(store, features=Features(supports_move=False, expunges_by_uid=True,
                                                      reports_copy_uids=True, exact_search=False))
    run(ruleset, mailbox, State(tmp_path / "state.sqlite3"), outbox)
    assert "move" not in mailbox.calls and mailbox.calls.count("copy") == 2
    assert subjects(store, "Notifications") == ["PR merged", "invoice for Actions"]


def clean_result(tmp_path: Path, ruleset: RuleSet) -> dict[str, list[tuple[bytes, frozenset[str]]]]:
    store = seeded()
    run(ruleset, MemoryMailbox(store), State(tmp_path / "clean.sqlite3"), Outbox())
    return settled(store)


@pytest.mark.parametrize("operation", ["add_flags", "copy", "move", "delete"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_run_cut_off_at_any_operation_is_finished_by_the_next(tmp_path: Path, ruleset: RuleSet, operation: str,
                                                                when: str) -> None:
    store, outbox = seeded(), Outbox()
    state = State(tmp_path / "state.sqlite3")
    faults = Faults(operation, when=when, error=Crash)  # type: ignore[arg-type]
    with pytest.raises(Crash):
        run(ruleset, MemoryMailbox(store, faults=faults), state, outbox)
    run(ruleset, MemoryMailbox(store), state, outbox)
    assert settled(store) == clean_result(tmp_path, ruleset)
    assert len(outbox.sent) == 1


@pytest.mark.parametrize("operation", ["add_flags", "copy", "move", "delete"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_dropped_connection_at_any_operation_is_retried_once(tmp_path: Path, ruleset: RuleSet, operation: str,
                                                               when: str) -> None:
    store = seeded()
    faults = Faults(operation, when=when, error=ConnectionLost)  # type: ignore[arg-type]
    mailbox = MemoryMailbox(store, faults=faults)
    run(ruleset, mailbox, State(tmp_path / "state.sqlite3"), Outbox())
    assert faults.fired
    assert settled(store) == clean_result(tmp_path, ruleset)


def test_a_folder_recreated_after_planning_refuses_the_plan(tmp_path: Path, ruleset: RuleSet) -> None:
    store, state = seeded(), State(tmp_path / "state.sqlite3")
    mailbox = MemoryMailbox(store)
    plan = plan_of(ruleset, mailbox, state)
    store.folders["INBOX"].uidvalidity += 1
    before = store.contents()
    journal = StateJournal(state, ACCOUNT, NOW)
    journal.begin(plan)
    with pytest.raises(StalePlanError):
        execute_plan(plan, mailbox, journal, sender=Outbox())
    assert store.contents() == before
