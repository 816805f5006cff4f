"""``mailrules undo RUN`` against a real Dovecot: after run then undo, the mailbox is as it was."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.support.cli import CliResult, run_cli
from tests.support.dovecot import Dovecot, User
from tests.support.workspace import Snapshot, Workspace, make_message, snapshot, workspace

NOW = "2026-11-20T10:00:00Z"

RULES = """\
version: 1
rules:
  - name: github
    when: {from: {domain: github.com}}
    then: [{flag: seen}, {move: Notifications/GitHub}]
  - name: invoices
    when: {subject: {regex: '\\binvoice\\b'}}
    then: [{flag: [flagged, $Invoice]}, {copy: Finance}]
  - name: read-is-unread
    when: {subject: {contains: Lunch}}
    then: [{unflag: seen}]
  - name: newsletters
    when: {header: {name: Precedence, is: bulk}}
    then: [{move: Newsletters}]
  - name: spam
    when: {subject: {contains: WIN}}
    then: [trash]
"""


def seed(server: Dovecot, user: User) -> None:
    recent = datetime(2026, 11, 19, tzinfo=timezone.utc)
    deliveries = [
        (make_message("[acme/app] PR #1", "GitHub <notifications@github.com>"), ""),
        (make_message("[acme/app] PR #2", "GitHub <noreply@security.github.com>"), "S"),
        (make_message("Invoice 42", "Billing <billing@shop.example>"), ""),
        (make_message("Weekly news", "News <news@letter.example>", headers={"Precedence": "bulk"}), "F"),
        (make_message("Lunch?", "Bob <bob@example.net>"), "S"),
        (make_message("WIN a prize", "Spam <win@spam.example>"), ""),
        (make_message("Just a note", "Ann <ann@example.net>"), ""),
    ]
    for raw, flags in deliveries:
        server.deliver(user, raw, flags=flags, internaldate=recent)


def by_message_id(shot: Snapshot, *, visible: bool = False) -> Counter[tuple[str, str, tuple[str, ...]]]:
    """Every message of the whole mailbox as (Message-ID, folder, flags); with ``visible``, not those
    flagged \\Deleted (what a server without UIDPLUS is left with: no UID EXPUNGE, so no expunging)."""
    return Counter({(mid, folder, flags): count for folder, content in shot.items()
                    for (mid, flags), count in content.items() if not (visible and "\\Deleted" in flags)})


def undo(space: Workspace, run_id: int, *extra: str) -> CliResult:
    return run_cli(["undo", str(run_id), "--accounts", str(space.accounts), "--state", str(space.state), *extra])


def last_run(space: Workspace) -> int:
    runs = json.loads(run_cli(["history", "--state", str(space.state), "--json"]).stdout)["runs"]
    return int(runs[0]["id"])


@pytest.mark.parametrize("without", [(), ("MOVE",), ("UIDPLUS", "MOVE")], ids=["move", "no-move", "no-uidplus"])
def test_run_then_undo_gives_back_every_folder_and_flag(tmp_path: Path, dovecot: Dovecot, dovecot_factory,
                                                        without: tuple[str, ...]) -> None:
    server = dovecot_factory(without=without) if without else dovecot
    user = server.add_user()
    seed(server, user)
    space = workspace(tmp_path, user, RULES)
    visible = "UIDPLUS" in without
    before = by_message_id(snapshot(server, user), visible=visible)
    assert space.run("--now", NOW, "--yes").code == 0
    after_run = by_message_id(snapshot(server, user), visible=visible)
    assert after_run != before
    run_id = last_run(space)

    shown = undo(space, run_id)
    assert shown.code == 0, shown.output
    assert f"`mailrules undo {run_id} --yes` does exactly this" in shown.stdout
    assert by_message_id(snapshot(server, user), visible=visible) == after_run  # shown only, nothing done
    assert "move to INBOX" in shown.stdout and "delete (UID EXPUNGE)" in shown.stdout, shown.stdout
    assert shown.stdout.startswith(f"Undo of run #{run_id} of t at "), shown.stdout

    done = undo(space, run_id, "--yes")
    assert done.code == 0, done.output
    restored = by_message_id(snapshot(server, user), visible=visible)
    assert restored == before, (restored - before, before - restored)
    assert re.search(r"undo of run #\d+: 6 message\(s\) restored, 0 left alone", done.stdout), done.stdout
    assert "EXPUNGE" not in server.rawlog_commands(user)  # only ever UID EXPUNGE of our own UIDs


def test_a_message_moved_by_another_client_is_left_alone_and_reported(tmp_path: Path, dovecot: Dovecot,
                                                                     imap_user: User) -> None:
    seed(dovecot, imap_user)
    space = workspace(tmp_path, imap_user, RULES)
    assert space.run("--now", NOW, "--yes").code == 0
    run_id = last_run(space)
    with dovecot.client(imap_user) as other:
        other.create_folder("Elsewhere")
        other.select_folder("Newsletters")
        other.move(other.search(["ALL"]), "Elsewhere")
    done = undo(space, run_id, "--yes")
    assert done.code == 0, done.output
    assert "no longer where the run moved it (Newsletters)" in done.output
    assert "5 message(s) restored, 1 left alone" in done.stdout
    shot = snapshot(dovecot, imap_user)
    assert len(shot["Elsewhere"]) == 1  # where the other client put it
    assert "Notifications/GitHub" not in shot and "Finance" not in shot and "Trash" not in shot


def test_undo_json_gives_the_plan_before_and_the_report_after(tmp_path: Path, dovecot: Dovecot,
                                                               imap_user: User) -> None:
    seed(dovecot, imap_user)
    space = workspace(tmp_path, imap_user, RULES)
    assert space.run("--now", NOW, "--yes").code == 0
    run_id = last_run(space)
    after_run = by_message_id(snapshot(dovecot, imap_user))

    shown = undo(space, run_id, "--json")
    assert shown.code == 0, shown.output
    planned = json.loads(shown.stdout)
    assert planned["undo_of"] == run_id and planned["left_alone"] == []
    moves = [move for folder in planned["plan"]["folders"] for move in folder["moves"]]
    assert {move["destination"] for move in moves} == {"INBOX"}
    assert by_message_id(snapshot(dovecot, imap_user)) == after_run  # shown only

    done = undo(space, run_id, "--json", "--yes")
    assert done.code == 0, done.output
    carried_out = json.loads(done.stdout)
    assert carried_out["restored"] == 6 and carried_out["report"]["failures"] == [], carried_out
    moved = sum(folder["moved"] for folder in carried_out["report"]["folders"])
    assert moved == sum(len(move["uids"]) for move in moves)
    assert carried_out["plan"]["folders"] == planned["plan"]["folders"]


def test_undo_of_an_undo_gives_the_runs_end_state_again(tmp_path: Path, dovecot: Dovecot, imap_user: User) -> None:
    seed(dovecot, imap_user)
    # Moves, trash and flags; a copy's removal can't be reversed (the copy is gone).
    space = workspace(tmp_path, imap_user, RULES.replace("{copy: Finance}", "{move: Finance}"))
    before = by_message_id(snapshot(dovecot, imap_user))
    assert space.run("--now", NOW, "--yes").code == 0
    end_of_run = by_message_id(snapshot(dovecot, imap_user))
    run_id = last_run(space)
    assert undo(space, run_id, "--yes").code == 0
    assert by_message_id(snapshot(dovecot, imap_user)) == before
    undo_id = last_run(space)
    assert undo_id > run_id
    again = undo(space, undo_id, "--yes")
    assert again.code == 0, again.output
    assert by_message_id(snapshot(dovecot, imap_user)) == end_of_run


def test_deletions_and_sends_are_said_to_be_final(tmp_path: Path, dovecot: Dovecot, imap_user: User) -> None:
    dovecot.deliver(imap_user, make_message("Old", "x@example.net"))
    space = workspace(tmp_path, imap_user, "version: 1\nrules:\n  - name: gone\n    when: {subject: Old}\n"
                                           "    then: [delete]\n")
    assert space.run("--now", NOW, "--yes").code == 0
    shown = undo(space, last_run(space))
    assert shown.code == 0, shown.output
    assert "INBOX UID 1 was deleted by the run and can't be restored" in shown.stdout
    unknown = undo(space, 999)
    assert unknown.code == 2 and "no run #999" in unknown.stderr


def test_a_maildir_run_is_refused_with_the_reason(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    for part in ("cur", "new", "tmp"):
        (maildir / part).mkdir(parents=True)
    (maildir / "new" / "1.eml").write_bytes(make_message("Old", "x@example.net"))
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  - name: seen\n    when: {subject: Old}\n    then: [{flag: seen}]\n")
    state = tmp_path / "state.sqlite3"
    assert run_cli(["run", str(rules), "--maildir", str(maildir), "--state", str(state), "--now", NOW]).code == 0
    refused = run_cli(["undo", "1", "--state", str(state)])
    assert refused.code == 6 and "a Maildir's UIDs last one session" in refused.stderr, refused.output


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["before", "after", "mid_response"])
def test_an_undo_cut_at_any_command_finishes_on_the_next_undo(tmp_path: Path, dovecot: Dovecot,
                                                               variant: str) -> None:
    """The connection drops at every command of an undo in turn and the server stays down; the
    next ``undo --yes`` settles the journal and finishes: 0 lost, 0 duplicated, all flags back."""
    from tests.support.faultproxy import Cut, FaultProxy
    from tests.support.workspace import accounts_yaml

    def prepared(name: str) -> tuple[User, Workspace, Counter[tuple[str, str, tuple[str, ...]]], int]:
        user = dovecot.add_user()
        seed(dovecot, user)
        space = workspace(tmp_path / name, user, RULES)
        before = by_message_id(snapshot(dovecot, user))
        assert space.run("--now", NOW, "--yes").code == 0
        return user, space, before, last_run(space)

    def through(space: Workspace, user: User, proxy: FaultProxy) -> None:
        space.accounts.write_text(accounts_yaml(user, host=proxy.host, port=proxy.port))

    user, space, before, run_id = prepared("clean")
    with FaultProxy(dovecot.host, dovecot.port) as proxy:
        through(space, user, proxy)
        assert undo(space, run_id, "--yes").code == 0
    commands = proxy.command_names()
    assert by_message_id(snapshot(dovecot, user)) == before
    problems, messages = [], 0
    for k in range(1, len(commands) + 1):
        user, space, before, run_id = prepared(f"cut-{k}")
        with FaultProxy(dovecot.host, dovecot.port, cut=Cut(k, variant, stay_down=True)) as proxy:  # type: ignore[arg-type]
            through(space, user, proxy)
            cut = undo(space, run_id, "--yes")
        space.accounts.write_text(accounts_yaml(user))
        resumed = undo(space, run_id, "--yes")
        after = by_message_id(snapshot(dovecot, user))
        messages += sum(after.values())
        where = f"cut {variant} command {k} ({commands[k - 1]})"
        if cut.code not in (0, 3) or "Traceback" in cut.output:
            problems.append(f"{where}: the cut undo exited {cut.code}: {cut.stderr[-300:]}")
        elif resumed.code != 0:
            problems.append(f"{where}: the next undo exited {resumed.code}: {resumed.stderr[-300:]}")
        elif after != before:
            problems.append(f"{where}: lost or misplaced {dict(before - after)}, extra {dict(after - before)}")
    print(f"\n[undo, {variant}] N={len(commands)} faults={len(commands)} messages-checked={messages} "
          f"problems={len(problems)}")
    assert not problems, "\n".join(problems)
