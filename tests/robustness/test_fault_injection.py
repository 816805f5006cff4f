"""No mail is ever lost when the connection drops, wherever it drops.

A clean run of a rule set that moves, copies, flags, trashes and deletes across folders
gives the reference: the N commands it sends and the mailbox it leaves.  Then, for every
k in 1..N and each way of cutting (before the k-th command reaches the server; after the
server did it but before the client hears; halfway through the answer), a fresh account
with the same mail gets a run through the fault proxy, then a normal run.  The outage is
either a blip (the run may reconnect and finish) or lasting (the server stays unreachable,
so the run fails and the next one must settle what its journal left open).  Afterwards the
mailbox must hold every message it should (nothing lost), no copy the clean run didn't
make (nothing duplicated) and the same flags in the same folders.  All of it again on a
server without MOVE, where a move is COPY + STORE \\Deleted + UID EXPUNGE.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.robustness.harness import (PASSWORD_ENV, CliResult, QuickDovecot, run_cli, scratch_root, threads_output,
                                      workspace)
from tests.robustness.mailbox_state import Identity, MailboxState, compare, read_state
from tests.support.dovecot import Dovecot, User
from tests.support.faultproxy import VARIANTS, Cut, FaultProxy, Variant

NOW = "2026-11-20T10:00:00Z"
PASSWORD = "fault-injection-pw"
SWEEP_WORKERS = 3  # runs mostly wait for Dovecot, so a few at once fit on two cores

RULES = """\
version: 1
defaults:
  folders: [INBOX, Work]
rules:
  - name: invoices
    when: {subject: invoice}
    then: [{flag: $Invoice}, {copy: Accounting}, {move: Archive/Invoices}]
  - name: newsletters
    when: {from: {domain: news.example}}
    then: [{flag: seen}, {move: Newsletters}]
  - name: spam
    when: {header: {name: X-Spam-Flag, is: "YES"}}
    then: [delete]
  - name: finished-work
    folders: [Work]
    when: {subject: done}
    then: [{flag: [seen, $Done]}, trash]
  - name: boss
    when: {from: boss@example.com}
    then: [{flag: flagged}, {copy: Important}]
"""


@dataclass(frozen=True, slots=True)
class Seeded:
    folder: str
    message_id: str
    raw: bytes
    maildir_flags: str = ""


def seed() -> list[Seeded]:
    """30 messages: what each rule acts on, and some that no rule touches."""
    kinds = [
        ("INBOX", "invoice", "billing@shop.example", 4, ""),
        ("INBOX", "newsletter", "letters@news.example", 5, ""),
        ("INBOX", "spam", "offers@spam.example", 3, ""),
        ("INBOX", "boss", "boss@example.com", 3, "S"),
        ("INBOX", "other", "friend@example.net", 7, ""),
        ("Work", "invoice", "billing@shop.example", 3, "S"),
        ("Work", "done", "colleague@example.com", 3, ""),
        ("Work", "other", "colleague@example.com", 2, "F"),
    ]
    messages = []
    for folder, kind, sender, count, flags in kinds:
        for number in range(count):
            message_id = f"<{folder.lower()}-{kind}-{number}@seed.example>"
            subject = {"invoice": f"Your invoice {number}", "done": f"Task {number} done"}.get(kind, f"{kind} {number}")
            spam = "X-Spam-Flag: YES\n" if kind == "spam" else ""
            raw = (f"From: {sender}\nTo: u@example.com\nSubject: {subject}\nMessage-ID: {message_id}\n"
                   f"Date: Thu, 19 Nov 2026 1{number % 10}:00:00 +0000\n{spam}\nBody of {message_id}.\n").encode()
            messages.append(Seeded(folder, message_id, raw, flags))
    return messages


def seed_user(server: Dovecot, user: User) -> None:
    for message in seed():
        server.deliver(user, message.raw, folder=message.folder, flags=message.maildir_flags)


@dataclass(frozen=True, slots=True)
class Baseline:
    """One server kind with everything an uninterrupted run there did."""

    name: str
    server: Dovecot
    commands: list[str]
    originals: Counter[Identity]
    reference: MailboxState
    scratch: Path  # fast storage for the many state databases


@pytest.fixture(scope="module")
def servers(dovecot: Dovecot) -> Iterator[dict[str, Dovecot]]:
    """Two quick servers of this module's own, one advertising MOVE and one not.

    ``dovecot`` (the session's server) is only asked for so that a machine without
    Dovecot skips, or fails under CI, exactly as the other server tests do.
    """
    with QuickDovecot() as with_move:
        capabilities = with_move.capabilities(with_move.add_user())
        with QuickDovecot(capability=" ".join(c for c in capabilities if c.upper() != "MOVE")) as without_move:
            yield {"with-MOVE": with_move, "without-MOVE": without_move}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = scratch_root(tmp_path_factory.mktemp("sweep"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module", params=["with-MOVE", "without-MOVE"])
def baseline(request: pytest.FixtureRequest, servers: dict[str, Dovecot], scratch: Path) -> Iterator[Baseline]:
    server = servers[request.param]
    with pytest.MonkeyPatch.context() as env:
        env.setenv(PASSWORD_ENV, PASSWORD)
        user = server.add_user(password=PASSWORD)
        seed_user(server, user)
        originals = read_state(server, user).identities()
        ws = workspace(scratch / f"clean-{request.param}", RULES)
        with FaultProxy(server.host, server.port) as proxy:
            result = run_cli(ws.point_at(proxy.host, proxy.port, user).run_args("--now", NOW))
        assert result.code == 0, f"the clean run failed:\n{result.output}"
        yield Baseline(request.param, server, proxy.command_names(), originals, read_state(server, user),
                       scratch / request.param)


def where(state: MailboxState) -> dict[str, list[str]]:
    return {folder: sorted(mid for mid, _flags in entries.elements()) for folder, entries in state.entries().items()}


def ids(folder: str, kind: str, count: int) -> list[str]:
    return [f"<{folder.lower()}-{kind}-{number}@seed.example>" for number in range(count)]


def test_the_clean_run_does_what_the_rules_say(baseline: Baseline) -> None:
    inbox_invoices, work_invoices = ids("INBOX", "invoice", 4), ids("Work", "invoice", 3)
    assert where(baseline.reference) == {
        "INBOX": sorted(ids("INBOX", "boss", 3) + ids("INBOX", "other", 7)),
        "Work": ids("Work", "other", 2),
        "Accounting": sorted(inbox_invoices + work_invoices),
        "Archive/Invoices": sorted(inbox_invoices + work_invoices),
        "Newsletters": ids("INBOX", "newsletter", 5),
        "Important": ids("INBOX", "boss", 3),
        "Trash": ids("Work", "done", 3),
    }
    flags = {(folder, mid): sorted(f) for folder, entries in baseline.reference.entries().items() for mid, f in entries}
    assert flags[("Archive/Invoices", "<work-invoice-0@seed.example>")] == ["$Invoice", "\\Seen"]
    assert flags[("Accounting", "<inbox-invoice-0@seed.example>")] == ["$Invoice"]
    assert flags[("Trash", "<work-done-1@seed.example>")] == ["$Done", "\\Seen"]
    assert flags[("Important", "<inbox-boss-2@seed.example>")] == ["\\Flagged", "\\Seen"]
    assert flags[("Newsletters", "<inbox-newsletter-4@seed.example>")] == ["\\Seen"]


def test_the_fallback_server_really_lacks_move(baseline: Baseline) -> None:
    moved = "UID MOVE" in baseline.commands
    assert moved is (baseline.name == "with-MOVE"), baseline.commands


def test_a_second_run_changes_nothing(baseline: Baseline) -> None:
    user = baseline.server.add_user(password=PASSWORD)
    seed_user(baseline.server, user)
    ws = workspace(baseline.scratch / "twice", RULES).point_at(baseline.server.host, baseline.server.port, user)
    assert run_cli(ws.run_args("--now", NOW)).code == 0
    again = run_cli(ws.run_args("--now", NOW))
    assert again.code == 0, again.output
    assert not compare(read_state(baseline.server, user), baseline.reference, baseline.originals)


@dataclass(frozen=True, slots=True)
class CutOutcome:
    """What one interrupted run and the normal run after it left behind."""

    cut: Cut
    interrupted_exit: int
    resumed_exit: int
    settled_by_journal: bool  # the resumed run first settled operations the cut run left pending
    messages: int
    problem: str | None


def interrupted_then_resumed(baseline: Baseline, cut: Cut, user: User, root: Path) -> CutOutcome:
    seed_user(baseline.server, user)
    ws = workspace(root, RULES)
    with FaultProxy(baseline.server.host, baseline.server.port, cut=cut) as proxy:
        cut_run = run_cli(ws.point_at(proxy.host, proxy.port, user).run_args("--now", NOW))
    resumed = run_cli(ws.point_at(baseline.server.host, baseline.server.port, user).run_args("--now", NOW))
    state = read_state(baseline.server, user)
    problem = judge(baseline, cut, cut_run, resumed, state)
    return CutOutcome(cut, cut_run.code, resumed.code, "recovered:" in resumed.stderr, state.count(), problem)


def judge(baseline: Baseline, cut: Cut, cut_run: CliResult, resumed: CliResult, state: MailboxState) -> str | None:
    where_cut = f"{cut.variant} command {cut.command} ({baseline.commands[cut.command - 1]})"
    if cut_run.code not in (0, 3) or "Traceback" in cut_run.output:
        return f"{where_cut}: interrupted run exited {cut_run.code}: {cut_run.stderr.strip()[-500:]}"
    if cut_run.code == 3 and "mailrules: error:" not in cut_run.stderr:
        return f"{where_cut}: the interrupted run failed without saying why: {cut_run.stderr.strip()[-500:]}"
    if resumed.code != 0:
        return f"{where_cut}: the run after it exited {resumed.code}: {resumed.stderr.strip()[-500:]}"
    damage = compare(state, baseline.reference, baseline.originals)
    return f"{where_cut}: {damage.summary()}" if damage else None


def tally(outcomes: list[CutOutcome]) -> str:
    return (f"faults={len(outcomes)} interrupted-runs-failed={sum(o.interrupted_exit == 3 for o in outcomes)} "
            f"interrupted-runs-finished={sum(o.interrupted_exit == 0 for o in outcomes)} "
            f"resumed-ok={sum(o.resumed_exit == 0 for o in outcomes)} "
            f"settled-by-journal={sum(o.settled_by_journal for o in outcomes)} "
            f"messages-checked={sum(o.messages for o in outcomes)}")


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("outage", ["blip", "server-stays-down"])
def test_no_mail_is_lost_wherever_the_connection_drops(baseline: Baseline, variant: Variant, outage: str) -> None:
    """A blip: the run reconnects and carries on.  Down: the run fails, the next run recovers."""
    cuts = [Cut(k, variant, stay_down=outage == "server-stays-down") for k in range(1, len(baseline.commands) + 1)]
    jobs = [(cut, baseline.server.add_user(password=PASSWORD), baseline.scratch / f"{outage}-{variant}-{cut.command}") for cut in cuts]
    with threads_output(), ThreadPoolExecutor(SWEEP_WORKERS) as workers:
        outcomes = list(workers.map(lambda job: interrupted_then_resumed(baseline, *job), jobs))
    print(f"\n[{baseline.name}, {outage}, {variant}] N={len(baseline.commands)} {tally(outcomes)}")
    failures = [outcome.problem for outcome in outcomes if outcome.problem]
    assert not failures, f"{len(failures)} of {len(outcomes)} cuts went wrong:\n" + "\n".join(failures)
