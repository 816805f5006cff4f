"""A server without UIDPLUS (and without MOVE): originals stay flagged \\Deleted, and no run copies them again."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.integration.test_plan_run import NOW, RULES, seed
from tests.support.dovecot import Dovecot, User
from tests.support.workspace import Snapshot, make_message, snapshot, workspace


def duplicates(shot: Snapshot) -> dict[str, list[str]]:
    """Message-IDs held more than once by a folder (a flagged original and its copy are in two)."""
    found: dict[str, list[str]] = {}
    for folder, content in shot.items():
        counts = Counter(mid for mid, _flags in content.elements())
        twice = sorted(mid for mid, count in counts.items() if count > 1)
        if twice:
            found[folder] = twice
    return found


def where_each_is(shot: Snapshot) -> Counter[str]:
    """How many messages carry each Message-ID, over every folder."""
    return Counter(mid for content in shot.values() for mid, _flags in content.elements())


def server_without_uidplus(dovecot_factory) -> tuple[Dovecot, User]:  # type: ignore[no-untyped-def]
    server = dovecot_factory(without=("UIDPLUS", "MOVE"))
    user = server.add_user()
    assert not {"UIDPLUS", "MOVE"} & set(server.capabilities(user))
    seed(server, user)
    return server, user


def test_three_runs_copy_each_message_once(tmp_path: Path, dovecot_factory) -> None:  # type: ignore[no-untyped-def]
    server, user = server_without_uidplus(dovecot_factory)
    space = workspace(tmp_path, user, RULES)
    first = space.run("--now", NOW)
    assert first.code == 0, first.output
    after_first = snapshot(server, user)
    for _ in range(2):
        again = space.run("--now", NOW)
        assert again.code == 0, again.output
        assert "nothing to do" in again.stdout.lower() or "Done: nothing changed." in again.stdout, again.stdout
    after_third = snapshot(server, user)
    assert after_third == after_first
    assert duplicates(after_third) == {}
    # Each moved message: its copy and its flagged original; the invoice copy and its original.
    assert max(where_each_is(after_third).values()) == 2


def test_the_summary_says_copied_left_flagged_not_moved(tmp_path: Path, dovecot_factory) -> None:  # type: ignore[no-untyped-def]
    server, user = server_without_uidplus(dovecot_factory)
    result = workspace(tmp_path, user, RULES).run("--now", NOW)
    assert result.code == 0, result.output
    done = result.stdout.splitlines()[-1]
    assert done.startswith("Done:") and "moved" not in done and "deleted" not in done.replace("\\Deleted", "")
    assert "copied and left flagged 4" in done and "left flagged \\Deleted 1" in done, done


def test_an_undeleted_original_is_not_copied_again(tmp_path: Path, dovecot_factory) -> None:  # type: ignore[no-untyped-def]
    """Another client clears \\Deleted on the originals: the journal still knows they were moved."""
    server, user = server_without_uidplus(dovecot_factory)
    space = workspace(tmp_path, user, RULES)
    assert space.run("--now", NOW).code == 0
    with server.client(user) as imap:
        imap.select_folder("INBOX")
        imap.remove_flags(imap.search(["DELETED"]), ["\\Deleted"])
    again = space.run("--now", NOW)
    assert again.code == 0, again.output
    assert duplicates(snapshot(server, user)) == {}


def test_without_state_deleted_messages_are_skipped(tmp_path: Path, dovecot_factory) -> None:  # type: ignore[no-untyped-def]
    server, user = server_without_uidplus(dovecot_factory)
    # Only moves and deletions: a copy rule's record of what it copied is in the state itself.
    moves_only = RULES.replace("then: [{flag: [flagged, $Invoice]}, {copy: Finance}]", "then: [{flag: flagged}]")
    space = workspace(tmp_path, user, moves_only)
    assert space.run("--now", NOW).code == 0
    after_first = snapshot(server, user)
    space.state.unlink()  # a new machine, or a lost state file
    plan = space.plan("--now", NOW)
    assert plan.code == 0 and "Notifications/GitHub" not in plan.stdout, plan.stdout
    assert space.run("--now", NOW).code == 0
    assert snapshot(server, user) == after_first


def test_only_rules_that_ask_about_deleted_see_deleted_mail(tmp_path: Path, dovecot: Dovecot,
                                                             imap_user: User) -> None:
    dovecot.deliver(imap_user, make_message("gone", message_id="<gone@t>"), flags="T")
    dovecot.deliver(imap_user, make_message("kept", message_id="<kept@t>"))
    rules = """\
version: 1
rules:
  - name: everything
    when: {all: []}
    then: [{copy: Everything}]
  - name: purge
    when: {deleted: true}
    then: [{copy: Purged}]
"""
    result = workspace(tmp_path, imap_user, rules).run("--now", NOW)
    assert result.code == 0, result.output
    shot = snapshot(dovecot, imap_user)
    assert {mid for mid, _ in shot["Everything"]} == {"<kept@t>"}
    assert {mid for mid, _ in shot["Purged"]} == {"<gone@t>"}


def test_the_plan_says_what_a_server_without_uidplus_will_leave_flagged(tmp_path: Path, dovecot_factory) -> None:  # type: ignore[no-untyped-def]
    server, user = server_without_uidplus(dovecot_factory)
    result = workspace(tmp_path, user, RULES).plan("--now", NOW)
    assert result.code == 0, result.output
    moves = [line for line in result.stdout.splitlines() if line.strip().startswith(("move to", "trash to"))]
    assert moves and all("(copy; original left flagged \\Deleted" in line for line in moves), result.stdout
    assert "UID EXPUNGE" not in result.stdout
