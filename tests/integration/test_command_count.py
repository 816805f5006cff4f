"""The number of IMAP commands a run sends does not grow with the mailbox.

The benchmark's 20 rules (benchmarks/rules.yaml) run over a generated mailbox of 100
and of 2,000 messages: both runs must send exactly as many commands, and no more than
one SEARCH per rule, one MOVE per destination and a fixed allowance for the rule
folder (SELECT, FETCH, STORE, EXPUNGE, LIST ...).  Each run must also file every
message where the benchmark's independent reference classifier says, so a run that
does nothing cannot pass.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from benchmarks.mailgen import generate, write_maildir
from benchmarks.measure import Traffic, read_traffic
from benchmarks.reference import RULE_FOLDERS, RULES, compare, destinations, expected_state, read_end_state, read_mailbox
from mailrules.cli import main
from tests.support.dovecot import Dovecot, User

RULES_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "rules.yaml"
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
PER_FOLDER = 10  # SELECT, UID FETCH, UID STORE, UID EXPUNGE, LIST, ... for each folder the rules read


def seed(user: User, count: int) -> None:
    write_maildir(user.maildir, generate(count, seed=1, now=NOW), destinations())


def accounts_file(path: Path, dovecot: Dovecot, user: User) -> Path:
    path.write_text(
        "accounts:\n  bench:\n"
        f"    imap: {{host: {dovecot.host}, port: {dovecot.port}, tls: none, username: {user.username},"
        " password_env: BENCH_PASSWORD}\n"
        "    addresses: [u@example.com]\n")
    return path


def counted_run(dovecot: Dovecot, user: User, work: Path, monkeypatch: pytest.MonkeyPatch) -> Traffic:
    """Run the rules once over ``user``'s mailbox; check where everything went; count the commands."""
    work.mkdir()
    monkeypatch.setenv("BENCH_PASSWORD", user.password)
    expected, outcomes = expected_state(read_mailbox(user.maildir), NOW, "spec")
    # Otherwise a rule with nothing to do in the small mailbox could make the counts differ.
    acting = {name for outcome in outcomes.values() for name in outcome.matched}
    assert acting == {rule.name for rule in RULES}, "every rule must act on some message"
    dovecot.clear_rawlog(user)
    status = main(["run", str(RULES_FILE), "--accounts", str(accounts_file(work / "accounts.yaml", dovecot, user)),
                   "--account", "bench", "--state", str(work / "state.sqlite3"), "--now", NOW.isoformat(), "--yes"])
    assert status == 0
    assert compare(expected, read_end_state(user.maildir)) == []
    return read_traffic(user)


@pytest.mark.slow
def test_commands_do_not_grow_with_the_mailbox(dovecot: Dovecot, imap_user: User, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    small_user, big_user = imap_user, dovecot.add_user()
    seed(small_user, 100)
    seed(big_user, 2000)

    small = counted_run(dovecot, small_user, tmp_path / "small", monkeypatch)
    big = counted_run(dovecot, big_user, tmp_path / "big", monkeypatch)

    assert big.total_commands == small.total_commands, (small.commands, big.commands)
    budget = len(RULES) + len(destinations()) + PER_FOLDER * len(RULE_FOLDERS)
    assert big.total_commands <= budget, big.commands
