"""``mailrules plan`` and ``run`` against a real Dovecot: the plan a user reviews is what runs."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.support.dovecot import Dovecot, User
from tests.support.workspace import Workspace, make_message, message_ids, snapshot, workspace

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
  - name: old-newsletters
    when: {header: {name: Precedence, is: bulk}, older_than: 30d}
    then: [delete]
  - name: newsletters
    when: {header: {name: Precedence, is: bulk}}
    then: [{move: Newsletters}]
  - name: gruesse
    when: {subject: "GRÜSSE"}
    then: [{move: "Privat/Grüße"}]
"""


def seed(server: Dovecot, user: User) -> None:
    old = datetime(2026, 9, 1, tzinfo=timezone.utc)
    recent = datetime(2026, 11, 19, tzinfo=timezone.utc)
    deliveries = [
        (make_message("[acme/app] PR #1", "GitHub <notifications@github.com>"), "", recent),
        (make_message("[acme/app] PR #2", "GitHub <noreply@security.github.com>"), "S", recent),
        (make_message("Your account", "Fake <support@evilgithub.com>"), "", recent),
        (make_message("Invoice 42", "Billing <billing@shop.example>"), "", recent),
        (make_message("Invoices overview", "Billing <billing@shop.example>"), "", recent),
        (make_message("Weekly news", "News <news@letter.example>", headers={"Precedence": "bulk"}), "", old),
        (make_message("Daily news", "News <news@letter.example>", headers={"Precedence": "bulk"}), "", recent),
        (make_message("Viele Grüße aus Köln", "Oma <oma@familie.example>"), "", recent),
        (make_message("Lunch?", "Bob <bob@example.net>"), "", recent),
    ]
    for raw, flags, when in deliveries:
        server.deliver(user, raw, flags=flags, internaldate=when)


@pytest.fixture
def space(tmp_path: Path, dovecot: Dovecot, imap_user: User) -> Workspace:
    seed(dovecot, imap_user)
    return workspace(tmp_path, imap_user, RULES)


def ids_of(server: Dovecot, user: User, folder: str) -> set[str]:
    return message_ids(snapshot(server, user)).get(folder, set())


def test_plan_changes_nothing_not_even_seen(space: Workspace, dovecot: Dovecot) -> None:
    before = snapshot(dovecot, space.user)
    result = space.plan("--now", NOW)
    assert result.code == 0, result.output
    assert "Would change" in result.stdout
    assert snapshot(dovecot, space.user) == before


def test_run_does_exactly_what_plan_showed(space: Workspace, dovecot: Dovecot) -> None:
    plan = json.loads(space.plan("--now", NOW, "--json").stdout)
    inbox = next(folder for folder in plan["folders"] if folder["folder"] == "INBOX")
    result = space.run("--now", NOW, "--yes")
    assert result.code == 0, result.output
    after = message_ids(snapshot(dovecot, space.user))
    planned_moves = {move["destination"]: len(move["uids"]) for move in inbox["moves"]}
    assert planned_moves == {"Notifications/GitHub": 2, "Newsletters": 1, "Privat/Grüße": 1}
    assert {folder: len(after.get(folder, ())) for folder in planned_moves} == planned_moves
    assert len(after["Finance"]) == sum(len(copy["uids"]) for copy in inbox["copies"]) == 1
    assert len(inbox["deletions"]) == 1
    assert len(after["INBOX"]) == 9 - 4 - 1  # moved out, deleted; copies stay


def test_outcome_follows_the_rules(space: Workspace, dovecot: Dovecot) -> None:
    assert space.run("--now", NOW).code == 0
    shot = snapshot(dovecot, space.user)
    github = shot["Notifications/GitHub"]
    assert all("\\Seen" in flags for _, flags in github)  # the flag is set before the move
    finance = list(shot["Finance"])
    assert len(finance) == 1 and set(finance[0][1]) >= {"\\Flagged", "$Invoice"}
    inbox_ids = {mid for mid, _ in shot["INBOX"]}
    assert len(inbox_ids) == 4  # evilgithub, the invoice (copied, kept), "Invoices overview", lunch
    assert "Weekly news" not in str(shot)  # deleted: it was older than 30 days


def test_a_second_run_plans_nothing(space: Workspace, dovecot: Dovecot) -> None:
    assert space.run("--now", NOW).code == 0
    after_first = snapshot(dovecot, space.user)
    second = space.plan("--now", NOW)
    assert second.code == 0
    assert "Nothing to do." in second.stdout
    assert space.run("--now", NOW).code == 0
    assert snapshot(dovecot, space.user) == after_first


def test_a_message_another_client_marked_deleted_survives(space: Workspace, dovecot: Dovecot) -> None:
    with dovecot.client(space.user) as other:
        other.select_folder("INBOX")
        lunch = other.search(["SUBJECT", "Lunch?"])
        other.add_flags(lunch, [b"\\Deleted"])
    assert space.run("--now", NOW).code == 0
    inbox = snapshot(dovecot, space.user)["INBOX"]
    assert any("\\Deleted" in flags for _, flags in inbox)


def test_a_server_without_move_gets_the_same_result(tmp_path: Path, dovecot: Dovecot, dovecot_factory) -> None:
    results = []
    for name, server in (("with-move", dovecot), ("without-move", dovecot_factory(without=("MOVE",)))):
        user = server.add_user()
        seed(server, user)
        space = workspace(tmp_path / name, user, RULES)
        assert space.run("--now", NOW).code == 0
        results.append(snapshot(server, user))
        if name == "without-move":
            assert "MOVE" not in " ".join(server.rawlog_commands(user)).split()
    assert results[0] == results[1]


def test_a_uidvalidity_change_between_plan_and_run_is_refused(tmp_path: Path, dovecot: Dovecot,
                                                             imap_user: User) -> None:
    from mailrules.backends.imap import ImapMailbox
    from mailrules.errors import StalePlanError
    from mailrules.execute import execute_plan
    from mailrules.loader import load_ruleset
    from mailrules.planner import PlanOptions, build_plan
    from mailrules.state import State
    from mailrules.journal import StateJournal

    for subject in ("one", "two"):
        dovecot.deliver(imap_user, make_message(subject), folder="Work")
    space = workspace(tmp_path, imap_user, "version: 1\nrules:\n  - name: all\n    folders: [Work]\n"
                                           "    when: all\n    then: [{move: Done}]\n")
    ruleset = load_ruleset(space.rules).ruleset
    with ImapMailbox(imap_user.host, imap_user.port, tls="none", username=imap_user.username,
                     password=imap_user.password) as mailbox:
        plan = build_plan(ruleset, mailbox, PlanOptions(now=datetime.now(timezone.utc)))
        with dovecot.client(imap_user) as other:  # same name, new generation of UIDs
            other.delete_folder("Work")
            other.create_folder("Work")
            other.append("Work", make_message("three"))
        before = snapshot(dovecot, imap_user)
        with State(space.state) as state, pytest.raises(StalePlanError, match="UIDVALIDITY"):
            execute_plan(plan, mailbox, StateJournal(state, "t", datetime.now(timezone.utc)))
    assert snapshot(dovecot, imap_user) == before


def test_non_ascii_subjects_senders_and_folders(space: Workspace, dovecot: Dovecot) -> None:
    assert space.run("--now", NOW).code == 0
    shot = snapshot(dovecot, space.user)
    assert len(shot["Privat/Grüße"]) == 1  # GRÜSSE found Grüße: Unicode casefold, checked locally


def test_a_second_run_while_one_holds_the_lock_exits_5(space: Workspace) -> None:
    from mailrules.lock import account_lock

    with account_lock(space.state.parent, "t"):
        result = space.run("--now", NOW)
    assert result.code == 5
    assert "in progress" in result.stderr


def test_new_only_sees_just_the_new_mail(space: Workspace, dovecot: Dovecot) -> None:
    assert space.run("--now", NOW, "--new-only").code == 0
    dovecot.deliver(space.user, make_message("[acme/app] PR #3", "GitHub <notifications@github.com>"))
    dovecot.deliver(space.user, make_message("Monthly news", "News <n@letter.example>", headers={"Precedence": "bulk"}))
    plan = json.loads(space.plan("--now", NOW, "--new-only", "--json").stdout)
    inbox = next(folder for folder in plan["folders"] if folder["folder"] == "INBOX")
    assert inbox["candidates"] == 2
    assert space.run("--now", NOW, "--new-only").code == 0
    assert len(ids_of(dovecot, space.user, "Notifications/GitHub")) == 3
    assert len(ids_of(dovecot, space.user, "Newsletters")) == 2


def test_the_maildir_backend_gives_the_same_outcome_as_dovecot(space: Workspace, dovecot: Dovecot,
                                                                 tmp_path: Path) -> None:
    import shutil

    from tests.support.workspace import run_cli

    local = tmp_path / "local-maildir"
    shutil.copytree(space.user.maildir, local)
    rules = space.rules.read_text().replace("{flag: [flagged, $Invoice]}", "{flag: flagged}")
    space.write_rules(rules)
    assert space.run("--now", NOW).code == 0
    result = run_cli(["run", str(space.rules), "--maildir", str(local), "--state", str(tmp_path / "m.db"),
                      "--now", NOW])
    assert result.code == 0, result.output
    from mailrules.backends.maildir import MaildirMailbox
    from mailrules.query import EVERYTHING

    box = MaildirMailbox(local)
    local_state: dict[str, set[str]] = {}
    for folder in box.list_folders():
        box.open_folder(folder, readonly=True)
        ids = {message.message_id or "" for _, message in box.fetch(box.search(EVERYTHING), _no_needs())}
        if ids:
            local_state[folder] = ids
    assert local_state == message_ids(snapshot(dovecot, space.user))


def _no_needs():  # type: ignore[no-untyped-def]
    from mailrules.backends.base import FetchNeeds

    return FetchNeeds()


def test_plan_warns_about_a_folder_that_does_not_exist(tmp_path: Path, dovecot: Dovecot, imap_user: User) -> None:
    space = workspace(tmp_path, imap_user, "version: 1\nrules:\n  - name: a\n    folders: [Nowhere]\n"
                                           "    when: {subject: x}\n    then: [delete]\n")
    result = space.plan()
    assert result.code == 0
    assert "Nowhere" in result.stderr + result.stdout


def test_age_rules_follow_now(space: Workspace, dovecot: Dovecot) -> None:
    earlier = (datetime(2026, 9, 15, tzinfo=timezone.utc)).isoformat()
    plan = json.loads(space.plan("--now", earlier, "--json").stdout)
    inbox = next(folder for folder in plan["folders"] if folder["folder"] == "INBOX")
    assert inbox["deletions"] == []  # on Sept 15 the newsletter was only two weeks old


def test_search_and_local_strategies_plan_the_same(space: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    import mailrules.scan as planner

    def operations(result) -> list[object]:  # type: ignore[no-untyped-def]
        plan = json.loads(result.stdout)
        keys = ("flag_changes", "copies", "moves", "deletions")
        return [{key: folder[key] for key in keys} | {"folder": folder["folder"]} for folder in plan["folders"]]

    space.write_rules(RULES.split("  - name: gruesse")[0])  # unpushable (casefold): it would make SEARCH return all
    local = space.plan("--now", NOW, "--json")
    monkeypatch.setattr(planner, "LOCAL_SCAN_LIMIT", 0)
    monkeypatch.setattr(planner, "SEARCHES_PER_FETCH", 10_000)
    searched = space.plan("--now", NOW, "--json")
    assert local.code == searched.code == 0
    assert operations(local) == operations(searched)
    space.write_rules(RULES.split("  - name: invoices")[0])
    narrowed = json.loads(space.plan("--now", NOW, "--json").stdout)
    # SEARCH FROM github.com returns the two notifications and evilgithub.com, which the local check rejects.
    assert narrowed["folders"][0]["candidates"] == 3
    assert len(narrowed["folders"][0]["moves"][0]["uids"]) == 2


def test_a_word_matching_server_is_never_sent_header_text(tmp_path: Path, dovecot: Dovecot, dovecot_factory,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import mailrules.scan as planner

    monkeypatch.setattr(planner, "LOCAL_SCAN_LIMIT", 0)  # take the SEARCH path
    gmail_like = dovecot_factory(capability=" ".join(dovecot.capabilities(dovecot.add_user()) + ["X-GM-EXT-1"]))
    user = gmail_like.add_user()
    seed(gmail_like, user)
    space = workspace(tmp_path, user, RULES.split("  - name: invoices")[0])
    plan = json.loads(space.plan("--now", NOW, "--json").stdout)
    assert len(plan["folders"][0]["moves"][0]["uids"]) == 2
    sent = b"".join(path.read_bytes() for path in user.rawlog_dir.glob("*.in"))
    assert b"UID SEARCH" in sent
    assert b"github" not in sent.lower()  # only `HEADER From ""`: presence, never a word to match


def test_trashing_more_than_the_threshold_needs_yes(tmp_path: Path, dovecot: Dovecot, imap_user: User) -> None:
    for index in range(5):
        dovecot.deliver(imap_user, make_message(f"old {index}"))
    space = workspace(tmp_path, imap_user, "version: 1\nrules:\n  - name: purge\n    when: {subject: old}\n"
                                           "    then: [trash]\n", extra="    delete_threshold: 3\n")
    before = snapshot(dovecot, imap_user)
    refused = space.run("--now", NOW)
    assert refused.code == 4
    assert "would trash or delete 5 messages (more than 3)" in refused.stderr
    assert snapshot(dovecot, imap_user) == before
    assert space.run("--now", NOW, "--yes").code == 0
    assert len(snapshot(dovecot, imap_user)["Trash"]) == 5


def test_history_lists_the_runs(space: Workspace) -> None:
    from tests.support.workspace import run_cli

    assert space.run("--now", NOW).code == 0
    assert space.run("--now", NOW, "--new-only").code == 0
    history = run_cli(["history", "--state", str(space.state)])
    assert history.code == 0
    lines = [line for line in history.stdout.splitlines() if line.startswith("#")]  # one per run
    assert len(lines) == 2 and "run-new" in lines[0] and " ok " in lines[0]
    assert "operation(s)" in lines[1]


def test_verbose_shows_the_imap_commands_without_the_password(space: Workspace) -> None:
    result = space.run("--now", NOW, "-v")
    assert result.code == 0
    assert "imap> LOGIN " in result.stderr and "UID MOVE" in result.stderr
    assert space.user.password not in result.output


def test_a_server_without_uidplus_leaves_deletions_flagged_and_says_so(tmp_path: Path, dovecot_factory) -> None:
    server = dovecot_factory(without=("MOVE", "UIDPLUS"))
    user = server.add_user()
    seed(server, user)
    space = workspace(tmp_path, user, RULES)
    result = space.run("--now", NOW)
    assert result.code == 0, result.output
    assert "UIDPLUS" in result.stdout
    assert "EXPUNGE" not in server.rawlog_commands(user)  # never a plain EXPUNGE
    inbox = snapshot(server, user)["INBOX"]
    assert sum("\\Deleted" in flags for _, flags in inbox) == 5  # 4 moved (copied) + 1 deleted, all still there
