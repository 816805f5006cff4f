"""No mail is lost or duplicated when the server's process dies in the middle of a run.

A generated mailbox goes through the benchmark's 20 rules plus one that copies every read
message, on a Dovecot with MOVE and on one without (where a move is COPY, STORE \\Deleted,
UID EXPUNGE).  In each trial, the user's ``imap`` process is SIGKILLed at a random moment
of the execution phase; the run either reconnects and finishes, or fails and the next
run settles its journal.  After that next run the whole mailbox is read back: every
message must exist exactly as often as after an uninterrupted run (by Message-ID and
content), with the same flags in the same folders, and the run after the kill must end
cleanly (exit 0, so no duplicates it could only report).
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from benchmarks.mailbox import clone_maildir
from benchmarks.mailgen import generate, write_maildir
from benchmarks.reference import destinations
from tests.robustness.harness import PASSWORD_ENV, CliResult, run_cli, scratch_root, workspace
from tests.robustness.mailbox_state import Identity, MailboxState, compare, read_state
from tests.robustness.server_crash import CrashableDovecot, Kill, Killer, killed_during, random_delay
from tests.support.dovecot import Dovecot, User

NOW = "2026-11-20T10:00:00Z"
PASSWORD = "server-crash-pw"
RULES_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "rules.yaml"
COPY_RULE = """\
  - name: keep-read
    description: a COPY of half the mailbox, so a kill can land in the middle of one
    when: {seen: true}
    then: [{copy: Kept}]

"""
SAMPLE_KILLS, SAMPLE_MESSAGES = 3, 800
# A killed imap process can leave an empty dovecot-uidlist.lock that Dovecot only takes
# for stale after two minutes; sessions wait for it until mailrules' 60 s timeout and the
# run exits 3 ("run again").  A cron job would simply run again later; so does the sweep.
RERUNS = 4
KILL_WINDOW = 0.8  # of a clean run's execution time
SWEEP_KILLS, SWEEP_MESSAGES = 40, 1500


def rules_text() -> str:
    text = RULES_FILE.read_text()
    marker = "rules:\n"
    at = text.index(marker) + len(marker)
    return text[:at] + COPY_RULE + text[at:]


@pytest.fixture(scope="module")
def servers(dovecot: Dovecot) -> Iterator[dict[str, CrashableDovecot]]:
    """A killable server with MOVE and one without; ``dovecot`` only makes a machine
    without Dovecot skip (or fail under CI) as every server test does."""
    with CrashableDovecot() as with_move:
        capabilities = with_move.capabilities(with_move.add_user())
        without = " ".join(cap for cap in capabilities if cap.upper() != "MOVE")
        with CrashableDovecot(capability=without) as without_move:
            yield {"with-MOVE": with_move, "without-MOVE": without_move}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = scratch_root(tmp_path_factory.mktemp("crash"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class Mailboxes:
    """Generated Maildirs, kept once and hard-linked into each trial's account."""

    root: Path

    def template(self, count: int) -> Path:
        path = self.root / str(count)
        if not path.exists():
            when = datetime.fromisoformat(NOW.replace("Z", "+00:00"))
            write_maildir(path, generate(count, seed=18, now=when), (*destinations(), "Kept"))
        return path


@pytest.fixture(scope="module")
def mailboxes() -> Iterator[Mailboxes]:
    # Under /tmp like the servers' mail, so the files can be hard-linked there.
    root = Path(tempfile.mkdtemp(prefix="mailrules-crash-mail-"))
    root.chmod(0o755)
    yield Mailboxes(root)
    shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class Baseline:
    name: str
    server: CrashableDovecot
    template: Path
    originals: Counter[Identity]
    reference: MailboxState
    window: float  # seconds from the first SELECT to the end of an uninterrupted run
    scratch: Path


def fresh_account(server: CrashableDovecot, template: Path) -> User:
    user = server.add_user(password=PASSWORD)
    clone_maildir(template, user.maildir)
    return user


def make_baseline(name: str, server: CrashableDovecot, template: Path, scratch: Path) -> Baseline:
    user = fresh_account(server, template)
    originals = read_state(server, user).identities()
    ws = workspace(scratch / f"clean-{name}-{template.name}", rules_text()).point_at(server.host, server.port, user)
    with Killer(server, user, delay=float("inf")) as watcher:
        result = run_cli(ws.run_args("--now", NOW))
        ended = time.monotonic()
    assert result.code == 0, f"the clean run failed:\n{result.output}"
    assert watcher.kill.started is not None, "the clean run never opened a folder read-write"
    return Baseline(name, server, template, originals, read_state(server, user), ended - watcher.kill.started,
                    scratch / name)


@dataclass(frozen=True, slots=True)
class Trial:
    kill: Kill
    executed: float  # seconds the killed run spent executing (from its first change to its end)
    cut_exit: int
    resumed_exit: int
    reruns: int  # extra runs while the server still waited out a dead process's lock (exit 3)
    reconciled: bool  # the killed run or the one after it said it reconciled a transfer
    messages: int
    lost: int
    duplicated: int
    problem: str | None


def trial(baseline: Baseline, number: int, delay: float) -> Trial:
    user = fresh_account(baseline.server, baseline.template)
    ws = workspace(baseline.scratch / f"trial-{number}", rules_text())
    ws.point_at(baseline.server.host, baseline.server.port, user)
    began = time.monotonic()
    cut_run, kill = killed_during(baseline.server, user, delay, lambda: run_cli(ws.run_args("--now", NOW)))
    middle = time.monotonic()
    resumed, reruns = run_cli(ws.run_args("--now", NOW)), 0
    while resumed.code == 3 and "Traceback" not in resumed.output and reruns < RERUNS:
        resumed, reruns = run_cli(ws.run_args("--now", NOW)), reruns + 1
    print(f"trial {number}: killed run {middle - began:.1f} s, next run(s) {time.monotonic() - middle:.1f} s",
          flush=True)
    state = read_state(baseline.server, user)
    damage = compare(state, baseline.reference, baseline.originals)
    problem = judge(kill, cut_run, resumed) or (damage.summary()[:2000] if damage else None)
    reconciled = "reconciled" in cut_run.output + resumed.output
    executed = middle - kill.started if kill.started is not None else 0.0
    return Trial(kill, executed, cut_run.code, resumed.code, reruns, reconciled, state.count(), len(damage.lost),
                 len(damage.duplicated), f"trial {number}, killed {kill.delay:.3f} s in ({kill.title}): {problem}"
                 if problem else None)


def judge(kill: Kill, cut_run: CliResult, resumed: CliResult) -> str | None:
    if cut_run.code not in (0, 3) or "Traceback" in cut_run.output:
        return f"the killed run exited {cut_run.code}: {cut_run.output[-800:]}"
    if resumed.code != 0 or "Traceback" in resumed.output:
        return f"the last run after it exited {resumed.code}: {resumed.output[-800:]}"
    return None


def sweep(baseline: Baseline, kills: int) -> list[Trial]:
    """Trials until ``kills`` of them struck during execution (at most twice as many trials).

    Each kill comes at a uniformly random moment of the execution window; a run that ends
    before its moment (runs vary on a shared machine) narrows the window to what it took.
    """
    rng = random.Random(f"{baseline.name}-{kills}")
    window, outcomes = baseline.window * KILL_WINDOW, []
    while sum(o.kill.struck for o in outcomes) < kills and len(outcomes) < 2 * kills:
        outcome = trial(baseline, len(outcomes) + 1, random_delay(rng, window))
        if not outcome.kill.struck and outcome.executed > 0:
            window = min(window, outcome.executed * KILL_WINDOW)
        outcomes.append(outcome)
    print(f"\n[{baseline.name}] {figures(outcomes)}")
    return outcomes


def figures(outcomes: list[Trial]) -> str:
    mid_transfer = sum(o.kill.struck and any(verb in o.kill.title for verb in (" UID MOVE", " UID COPY"))
                       for o in outcomes)
    return (f"trials={len(outcomes)} kills={sum(o.kill.struck for o in outcomes)} kills-mid-transfer={mid_transfer} "
            f"killed-runs-finished={sum(o.cut_exit == 0 for o in outcomes)} "
            f"killed-runs-failed={sum(o.cut_exit == 3 for o in outcomes)} "
            f"reconciled={sum(o.reconciled for o in outcomes)} "
            f"trials-needing-reruns={sum(o.reruns > 0 for o in outcomes)} "
            f"messages-checked={sum(o.messages for o in outcomes)} "
            f"lost={sum(o.lost for o in outcomes)} duplicated={sum(o.duplicated for o in outcomes)}")


@pytest.fixture(scope="module", params=["with-MOVE", "without-MOVE"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_killer_only_strikes_this_users_imap_process(servers: dict[str, CrashableDovecot],
                                                          mailboxes: Mailboxes, scratch: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    server = servers["with-MOVE"]
    bystander, victim = fresh_account(server, mailboxes.template(50)), fresh_account(server, mailboxes.template(50))
    with server.client(bystander) as other:
        other.select_folder("INBOX")
        ws = workspace(scratch / "killer", rules_text()).point_at(server.host, server.port, victim)
        result, kill = killed_during(server, victim, 0.0, lambda: run_cli(ws.run_args("--now", NOW)))
        assert kill.struck and f"[{victim.username} " in kill.title
        assert other.noop()  # the other user's session survived
    assert result.code in (0, 3), result.output


def test_a_killed_server_loses_and_duplicates_nothing(kind: str, servers: dict[str, CrashableDovecot],
                                                      mailboxes: Mailboxes, scratch: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    baseline = make_baseline(kind, servers[kind], mailboxes.template(SAMPLE_MESSAGES), scratch / "sample")
    outcomes = sweep(baseline, SAMPLE_KILLS)
    failures = [o.problem for o in outcomes if o.problem]
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_a_killed_server_loses_and_duplicates_nothing_sweep(kind: str, servers: dict[str, CrashableDovecot],
                                                            mailboxes: Mailboxes, scratch: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    baseline = make_baseline(kind, servers[kind], mailboxes.template(SWEEP_MESSAGES), scratch / "sweep")
    outcomes = sweep(baseline, SWEEP_KILLS)
    failures = [o.problem for o in outcomes if o.problem]
    assert sum(o.kill.struck for o in outcomes) >= SWEEP_KILLS, figures(outcomes)
    assert not failures, f"{len(failures)} of {len(outcomes)} trials went wrong:\n" + "\n".join(failures)
