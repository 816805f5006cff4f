"""One folder vocabulary in rule files on every server layout.

Rule files write ``/`` between levels, relative to the personal namespace.  Dovecot set up
like Cyrus's default layout (separator ``.``, personal folders under ``INBOX.``) must end
in the same state as the usual ``/`` layout, with every name translated.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_plan_run import NOW, RULES, seed
from tests.support.dovecot import Dovecot, User
from tests.support.workspace import make_message, message_ids, snapshot, workspace

CYRUS_LIKE = {"separator": ".", "prefix": "INBOX."}


@pytest.fixture
def prefixed(dovecot_factory) -> tuple[Dovecot, User]:  # type: ignore[no-untyped-def]
    server = dovecot_factory(**CYRUS_LIKE)
    return server, server.add_user()


def as_rule_names(ids: dict[str, set[str]]) -> dict[str, set[str]]:
    """``INBOX.Privat.Grüße`` -> ``Privat/Grüße``: the prefixed layout's folders in rule names."""
    renamed = {}
    for folder, content in ids.items():
        name = folder if folder == "INBOX" else folder.removeprefix("INBOX.").replace(".", "/")
        renamed[name] = content
    return renamed


def test_the_same_rules_give_the_same_end_state_on_both_layouts(tmp_path: Path, dovecot: Dovecot,
                                                                 imap_user: User, prefixed) -> None:  # type: ignore[no-untyped-def]
    server, user = prefixed
    seed(dovecot, imap_user)
    seed(server, user)
    plain = workspace(tmp_path / "plain", imap_user, RULES).run("--now", NOW, "--yes")
    cyrus_like = workspace(tmp_path / "prefixed", user, RULES).run("--now", NOW, "--yes")
    assert plain.code == 0, plain.output
    assert cyrus_like.code == 0, cyrus_like.output
    folders = message_ids(snapshot(server, user))
    assert {"INBOX.Notifications.GitHub", "INBOX.Finance", "INBOX.Privat.Grüße"} <= set(folders)
    assert as_rule_names(folders) == message_ids(snapshot(dovecot, imap_user))


def test_a_second_run_on_the_prefixed_layout_changes_nothing(tmp_path: Path, prefixed) -> None:  # type: ignore[no-untyped-def]
    server, user = prefixed
    seed(server, user)
    space = workspace(tmp_path, user, RULES)
    assert space.run("--now", NOW, "--yes").code == 0
    before = snapshot(server, user)
    again = space.run("--now", NOW, "--yes")
    assert again.code == 0, again.output
    assert "Folders to create" not in again.stdout
    assert snapshot(server, user) == before


@pytest.mark.parametrize("written", ["Archive", "INBOX/Archive", "inbox/Archive"])
def test_an_existing_folder_is_not_planned_for_creation(tmp_path: Path, prefixed, written: str) -> None:  # type: ignore[no-untyped-def]
    server, user = prefixed
    server.deliver(user, make_message("old", message_id="<old@t>"), folder="Archive")  # INBOX.Archive
    server.deliver(user, make_message("file me", message_id="<new@t>"))
    rules = f"version: 1\nrules:\n  - name: archive\n    when: {{subject: file}}\n    then: [{{move: '{written}'}}]\n"
    space = workspace(tmp_path, user, rules)
    plan = json.loads(space.plan("--now", NOW, "--json").stdout)
    assert plan["create_folders"] == []
    assert [move["destination"] for folder in plan["folders"] for move in folder["moves"]] == ["Archive"]
    assert space.run("--now", NOW).code == 0
    assert message_ids(snapshot(server, user))["INBOX.Archive"] == {"<old@t>", "<new@t>"}


def test_globs_and_sources_use_rule_names(tmp_path: Path, prefixed) -> None:  # type: ignore[no-untyped-def]
    server, user = prefixed
    server.deliver(user, make_message("py", message_id="<py@t>"), folder="Lists/python")
    server.deliver(user, make_message("rs", message_id="<rs@t>"), folder="Lists/rust/beta")
    rules = """\
version: 1
rules:
  - name: one-level
    folders: ["Lists/%"]
    when: {all: []}
    then: [{flag: seen}]
  - name: any-depth
    folders: ["Lists/*"]
    when: {all: []}
    then: [{flag: flagged}]
"""
    result = workspace(tmp_path, user, rules).run("--now", NOW)
    assert result.code == 0, result.output
    shot = snapshot(server, user)
    assert dict(shot["INBOX.Lists.python"]) == {("<py@t>", ("\\Flagged", "\\Seen")): 1}
    assert dict(shot["INBOX.Lists.rust.beta"]) == {("<rs@t>", ("\\Flagged",)): 1}


@pytest.mark.parametrize("command", ["plan", "run"])
def test_a_name_that_cannot_exist_is_refused_before_any_change(tmp_path: Path, prefixed, command: str) -> None:  # type: ignore[no-untyped-def]
    server, user = prefixed
    seed(server, user)
    rules = RULES + "  - name: releases\n    when: {subject: release}\n    then: [{move: Ops/v1.2}]\n"
    space = workspace(tmp_path, user, rules)
    before = snapshot(server, user)
    result = getattr(space, command)("--now", NOW)
    assert result.code == 6, result.output
    line = len(RULES.splitlines()) + 3
    assert f"rules.yaml:{line}:" in result.stderr and "'Ops/v1.2'" in result.stderr, result.stderr
    assert "'.'" in result.stderr and "Traceback" not in result.output
    assert snapshot(server, user) == before
    assert "CREATE" not in server.rawlog_commands(user)


def test_a_name_the_server_refuses_to_create_is_a_permanent_error(tmp_path: Path, dovecot: Dovecot,
                                                                  imap_user: User) -> None:
    """Dovecot's Maildir++ storage can't hold a '.' in a name even where '/' separates levels."""
    dovecot.append(imap_user, make_message("release", message_id="<rel@t>"))
    rules = "version: 1\nrules:\n  - name: releases\n    when: {subject: release}\n    then: [{move: Ops/v1.2}]\n"
    result = workspace(tmp_path, imap_user, rules).run("--now", NOW)
    assert result.code == 6, result.output
    assert "[CANNOT]" in result.stderr and "'Ops/v1.2'" in result.stderr, result.stderr  # the server's reason
    assert message_ids(snapshot(dovecot, imap_user)) == {"INBOX": {"<rel@t>"}}


def test_the_benchmark_rules_file_every_message_right_on_the_prefixed_layout(
        tmp_path: Path, prefixed, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """benchmarks/rules.yaml, checked against its independent reference classifier (Maildir++ on
    disk is the same for both layouts, so the end state is read the same way)."""
    from tests.integration.test_command_count import counted_run, seed as seed_benchmark

    server, user = prefixed
    seed_benchmark(user, 100)
    counted_run(server, user, tmp_path / "work", monkeypatch)  # asserts the end state
    assert any(name.startswith("INBOX.") for _, _, name in _listing(server, user))


def _listing(server: Dovecot, user: User) -> list[tuple[object, object, str]]:
    with server.client(user) as imap:
        return list(imap.list_folders())
