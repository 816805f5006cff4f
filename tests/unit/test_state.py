"""The state database: journal of intents, per-folder progress, actions never to repeat."""

from __future__ import annotations

import re
import sqlite3
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailrules.errors import StateStoreError, UsageError
from mailrules.state import MIGRATIONS, AppliedAction, State, default_state_path

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Op:
    """Shaped like the executor's Operation: extra fields must survive the journal."""

    folder: str
    uidvalidity: int
    kind: str
    uids: tuple[int, ...]
    destination: str | None = None
    rule: str | None = None
    dest_uidnext: int | None = None
    fingerprints: tuple[tuple[int, tuple[str, int, str]], ...] = ()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(tmp_path: Path, clock: Clock):  # type: ignore[no-untyped-def]
    with State(tmp_path / "state" / "state.sqlite3", clock=clock) as db:
        yield db


def raw(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


# ---------------------------------------------------------------- the file


def test_default_path_follows_xdg_state_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_path() == tmp_path / "mailrules" / "state.sqlite3"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_path() == tmp_path / "home" / ".local" / "state" / "mailrules" / "state.sqlite3"


def test_new_file_is_private_in_wal_mode_at_the_latest_schema(state: State) -> None:
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600
    assert raw(state.path, "PRAGMA journal_mode") == [("wal",)]
    assert raw(state.path, "PRAGMA user_version") == [(len(MIGRATIONS),)]


def test_reopening_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with State(path) as first:
        first.set_folder_state("work", "INBOX", 7, 42)
    with State(path) as second:
        assert second.folder_state("work", "INBOX") == (7, 42)


def test_a_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    State(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(UsageError, match="newer than this mailrules understands"):
        State(path)


def test_a_file_that_is_not_a_database_is_a_state_store_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateStoreError, match=re.escape(f"can't use the state file {path}")):
        State(path)


# ---------------------------------------------------------------- runs and the journal


def test_an_intent_stays_pending_until_marked(state: State, clock: Clock) -> None:
    run = state.begin_run("work", "run")
    copy = state.record_intent(run, "work", Op("INBOX", 9, "copy", (3, 1, 2, 7), "Archive", "keep",
                                                dest_uidnext=40, fingerprints=((1, ("<a@x>", 120, "2026")),)))
    flag = state.record_intent(run, "work", Op("INBOX", 9, "flag", (5,)))
    delete = state.record_intent(run, "work", Op("INBOX", 9, "delete", (6,)))
    state.mark_done(flag, {})
    state.mark_failed(delete, "server said NO")

    [pending] = state.pending_intents("work")
    assert pending.id == copy
    assert (pending.run_id, pending.folder, pending.uidvalidity) == (run, "INBOX", 9)
    assert (pending.kind, pending.rule, pending.destination) == ("copy", "keep", "Archive")
    assert pending.uids == (1, 2, 3, 7)
    assert pending.details["dest_uidnext"] == 40
    assert pending.details["fingerprints"] == [[1, ["<a@x>", 120, "2026"]]]
    assert pending.created_at == T0
    assert state.pending_intents("home") == []


def test_uids_are_journalled_as_compact_ranges(state: State) -> None:
    run = state.begin_run("work", "run")
    state.record_intent(run, "work", Op("INBOX", 9, "move", tuple(range(1, 1001)), "Old"))
    assert raw(state.path, "SELECT uids FROM operations") == [("1:1000",)]


def test_results_and_errors_are_kept(state: State) -> None:
    run = state.begin_run("work", "run")
    done = state.record_intent(run, "work", Op("INBOX", 9, "copy", (1, 2), "Keep"))
    failed = state.record_intent(run, "work", Op("INBOX", 9, "reply", (3,), rule="away"))
    state.mark_done(done, {"copyuid": {1: 10, 2: 11}})
    state.mark_failed(failed, "SMTP server unreachable")
    rows = raw(state.path, "SELECT status, result_json, error FROM operations ORDER BY id")
    assert rows == [("done", '{"copyuid": {"1": 10, "2": 11}}', None), ("failed", None, "SMTP server unreachable")]


def test_an_unknown_kind_is_refused(state: State) -> None:
    run = state.begin_run("work", "run")
    with pytest.raises(ValueError, match="unknown operation kind 'archive'"):
        state.record_intent(run, "work", Op("INBOX", 9, "archive", (1,)))


def test_recent_runs_newest_first_with_their_operation_counts(state: State, clock: Clock) -> None:
    first = state.begin_run("work", "run")
    state.record_intent(first, "work", Op("INBOX", 9, "flag", (1,)))
    state.record_intent(first, "work", Op("INBOX", 9, "flag", (2,)))
    clock.now = T0 + timedelta(minutes=5)
    state.finish_run(first, "ok", {"moved": 3})
    clock.now = T0 + timedelta(hours=1)
    second = state.begin_run("home", "plan")
    third = state.begin_run("work", "run-new")

    assert [run.id for run in state.recent_runs()] == [third, second, first]
    assert [run.id for run in state.recent_runs("work", limit=1)] == [third]
    old = state.recent_runs("work")[-1]
    assert (old.account, old.mode, old.status, old.operations) == ("work", "run", "ok", 2)
    assert (old.started_at, old.finished_at, old.summary) == (T0, T0 + timedelta(minutes=5), {"moved": 3})
    unfinished = state.recent_runs("home")[0]
    assert (unfinished.status, unfinished.finished_at, unfinished.operations) == ("running", None, 0)


# ---------------------------------------------------------------- folders


def test_folder_progress_only_grows_within_one_uidvalidity(state: State) -> None:
    assert state.folder_state("work", "INBOX") is None
    state.set_folder_state("work", "INBOX", 100, 50)
    state.set_folder_state("work", "INBOX", 100, 40)  # an older plan finishing late
    assert state.folder_state("work", "INBOX") == (100, 50)
    state.set_folder_state("work", "INBOX", 200, 3)  # folder recreated: UIDs start over
    assert state.folder_state("work", "INBOX") == (200, 3)
    assert state.folder_state("home", "INBOX") is None


def test_a_new_uidvalidity_forgets_what_was_applied_under_the_old_one(state: State) -> None:
    state.record_applied("work", "INBOX", 100, [(1, "keep", "copy", "Archive")])
    state.record_applied("work", "Lists", 100, [(1, "keep", "copy", "Archive")])
    state.set_folder_state("work", "INBOX", 200, 1)
    assert state.already_applied("work", "INBOX", 100) == set()
    assert state.already_applied("work", "Lists", 100) == {AppliedAction(1, "keep", "copy", "Archive")}


# ---------------------------------------------------------------- actions not to repeat


def test_applied_actions_are_recorded_once_and_found_by_uid(state: State) -> None:
    actions = [(1, "keep", "copy", "Archive"), (2, "away", "reply", "bob@example.org"), (3, None, "copy", "Keep")]
    state.record_applied("work", "INBOX", 100, actions)
    state.record_applied("work", "INBOX", 100, actions[:1])
    assert state.already_applied("work", "INBOX", 100, [1, 3, 99]) == {
        AppliedAction(1, "keep", "copy", "Archive"),
        AppliedAction(3, None, "copy", "Keep"),
    }
    assert len(state.already_applied("work", "INBOX", 100)) == 3
    assert state.already_applied("work", "INBOX", 101) == set()
    assert state.already_applied("home", "INBOX", 100) == set()


def test_applied_lookup_handles_more_uids_than_sqlite_parameters(state: State) -> None:
    state.record_applied("work", "INBOX", 1, [(uid, "fwd", "redirect", "x@example.org") for uid in range(1, 3001)])
    found = state.already_applied("work", "INBOX", 1, range(2000, 40001))
    assert {action.uid for action in found} == set(range(2000, 3001))


def test_last_reply_per_rule_and_sender_ignores_address_case(state: State, clock: Clock) -> None:
    assert state.last_reply("work", "away", "bob@example.org") is None
    state.record_reply("work", "away", "Bob@Example.org")
    assert state.last_reply("work", "away", "bob@example.org") == T0
    clock.now = T0 + timedelta(days=8)
    state.record_reply("work", "away", "bob@example.org")
    assert state.last_reply("work", "away", "BOB@example.org") == T0 + timedelta(days=8)
    assert state.last_reply("work", "other-rule", "bob@example.org") is None


def test_naive_timestamps_are_refused(state: State) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        state.record_reply("work", "away", "bob@example.org", sent_at=datetime(2026, 1, 1))


def test_two_processes_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with State(path) as one, State(path) as two:
        run = one.begin_run("work", "run")
        two.set_folder_state("home", "INBOX", 1, 5)
        assert two.recent_runs("work")[0].id == run
        assert one.folder_state("home", "INBOX") == (1, 5)


# ---------------------------------------------------------------- transfers: fingerprints, floors, watches


def test_a_schema_1_file_is_upgraded_keeping_its_journal(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("PRAGMA user_version = 1")
        db.execute("INSERT INTO runs (account, started_at, mode) VALUES ('work', '2026-11-20T10:00:00+00:00', 'run')")
        db.execute("INSERT INTO operations (run_id, account, folder, uidvalidity, kind, uids, destination,"
                   " details_json, created_at) VALUES (1, 'work', 'INBOX', 9, 'move', '1:3', 'Old', '{}',"
                   " '2026-11-20T10:00:00+00:00')")
    with State(path) as state:
        [pending] = state.pending_intents("work")
        assert (pending.kind, pending.uids, pending.details) == ("move", (1, 2, 3), {})
        assert raw(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
        assert state.transfer_prints(pending.id) == []


def test_fingerprints_are_kept_per_message_not_in_the_details(state: State) -> None:
    run = state.begin_run("work", "run")
    prints = ((1, ("<a@x>", 120, "2026-11-19T10:00:00+00:00")), (2, ("Thu|b@x|hi", 80, "")))
    op_id = state.record_intent(run, "work", Op("INBOX", 9, "move", (1, 2), "Old", fingerprints=prints))
    assert state.transfer_prints(op_id) == list(prints)
    assert "fingerprints" not in raw(state.path, "SELECT details_json FROM operations")[0][0]
    state.mark_done(op_id, {})  # settled and not watched: nothing needs them any more
    assert state.transfer_prints(op_id) == []


def test_a_watched_transfer_keeps_its_fingerprints_until_retired(state: State) -> None:
    run = state.begin_run("work", "run")
    op_id = state.record_intent(run, "work", Op("INBOX", 9, "copy", (1,), "Keep", fingerprints=((1, ("<a@x>", 1, "")),)))
    state.watch_duplicates("work", op_id, "Keep", 5, 12)
    state.mark_done(op_id, {})
    assert state.transfer_prints(op_id) == [(1, ("<a@x>", 1, ""))]
    state.retire_watch(op_id)
    assert state.transfer_prints(op_id) == []


def test_a_destination_floor_only_rises_within_one_uidvalidity(state: State) -> None:
    assert state.dest_floor("work", "Old") is None
    state.raise_dest_floor("work", "Old", 7, 40)
    state.raise_dest_floor("work", "Old", 7, 30)
    assert state.dest_floor("work", "Old") == (7, 40)
    state.raise_dest_floor("work", "Old", 8, 1)
    assert state.dest_floor("work", "Old") == (8, 1)
    assert state.dest_floor("home", "Old") is None


def test_a_duplicate_watch_lasts_until_retired(state: State) -> None:
    run = state.begin_run("work", "run")
    op_id = state.record_intent(run, "work", Op("INBOX", 9, "copy", (1,), "Keep"))
    state.watch_duplicates("work", op_id, "Keep", 5, 12)
    assert state.duplicate_watches("work") == [(op_id, "Keep", 5, 12, T0)]
    assert state.duplicate_watches("home") == []
    state.retire_watch(op_id)
    assert state.duplicate_watches("work") == []
