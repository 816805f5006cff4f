"""SPECIAL-USE (RFC 6154): trash, the sent folder and ``\\Junk``-style names go where the server says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_replies import NOW, RULES as REPLY_RULES, space_for, ticket
from tests.support.dovecot import Dovecot, User
from tests.support.smtp import RecordingSMTP
from tests.support.workspace import make_message, message_ids, snapshot, workspace

OUTLOOK_LIKE = {"Deleted Items": "\\Trash", "Sent Items": "\\Sent", "Spam": "\\Junk"}

RULES = """\
version: 1
rules:
  - name: spam
    when: {subject: offer}
    then: [trash]
  - name: junk
    when: {subject: junk}
    then: [{move: '\\Junk'}]
  - name: chosen
    when: {subject: chosen}
    then: [{trash: Papierkorb}]
"""


def outlook_like(dovecot_factory, **layout: str) -> tuple[Dovecot, User]:  # type: ignore[no-untyped-def]
    server = dovecot_factory(special_use=OUTLOOK_LIKE, **layout)
    user = server.add_user()
    for folder in OUTLOOK_LIKE:  # auto = no: they exist once a client made them, as on Outlook
        server.deliver(user, make_message(f"old in {folder}", message_id=f"<{folder.replace(' ', '-')}@old>"), folder=folder)
    for subject in ("offer 1", "junk 1", "chosen 1", "hello"):
        server.deliver(user, make_message(subject, message_id=f"<{subject.replace(' ', '-')}@t>"))
    return server, user


def planned_moves(plan_json: str) -> dict[str, list[int]]:
    plan = json.loads(plan_json)
    return {move["destination"]: move["uids"] for folder in plan["folders"] for move in folder["moves"]}


@pytest.mark.parametrize("layout", [{}, {"separator": ".", "prefix": "INBOX."}], ids=["plain", "prefixed"])
def test_trash_and_junk_go_to_the_special_use_folders(tmp_path: Path, dovecot_factory, layout) -> None:  # type: ignore[no-untyped-def]
    server, user = outlook_like(dovecot_factory, **layout)
    space = workspace(tmp_path, user, RULES)
    plan = space.plan("--now", NOW)
    assert plan.code == 0, plan.output
    assert "Deleted Items" in plan.stdout and "Spam" in plan.stdout and "Folders to create: Papierkorb" in plan.stdout
    assert set(planned_moves(space.plan("--now", NOW, "--json").stdout)) == {"Deleted Items", "Spam", "Papierkorb"}
    result = space.run("--now", NOW)
    assert result.code == 0, result.output
    prefix = layout.get("prefix", "")
    ids = message_ids(snapshot(server, user))
    assert ids[f"{prefix}Deleted Items"] == {"<Deleted-Items@old>", "<offer-1@t>"}
    assert ids[f"{prefix}Spam"] == {"<Spam@old>", "<junk-1@t>"}
    assert ids[f"{prefix}Papierkorb"] == {"<chosen-1@t>"}  # an explicit folder is taken as written
    assert f"{prefix}Trash" not in ids and f"{prefix}Junk" not in ids


def test_without_special_use_the_configured_names_are_used(tmp_path: Path, dovecot_factory) -> None:  # type: ignore[no-untyped-def]
    server = dovecot_factory(special_use={})
    user = server.add_user()
    for subject in ("offer 1", "junk 1"):
        server.deliver(user, make_message(subject, message_id=f"<{subject.replace(' ', '-')}@t>"))
    rules = RULES.replace("rules:\n", "defaults: {trash_folder: Corbeille}\nrules:\n", 1)
    result = workspace(tmp_path, user, rules).run("--now", NOW)
    assert result.code == 0, result.output
    ids = message_ids(snapshot(server, user))
    assert ids["Corbeille"] == {"<offer-1@t>"} and ids["Junk"] == {"<junk-1@t>"}


def test_rules_can_read_a_special_use_folder(tmp_path: Path, dovecot_factory) -> None:  # type: ignore[no-untyped-def]
    server, user = outlook_like(dovecot_factory)
    rules = "version: 1\nrules:\n  - name: read-junk\n    folders: ['\\Junk']\n    when: {all: []}\n    then: [{flag: seen}]\n"
    result = workspace(tmp_path, user, rules).run("--now", NOW)
    assert result.code == 0, result.output
    assert dict(snapshot(server, user)["Spam"]) == {("<Spam@old>", ("\\Seen",)): 1}


def test_a_reply_saved_to_sent_lands_in_the_special_use_sent_folder(tmp_path: Path, dovecot_factory,
                                                                     smtp_server: RecordingSMTP) -> None:  # type: ignore[no-untyped-def]
    smtp_server.clear()
    if not smtp_server.running:
        smtp_server.start()
    server, user = outlook_like(dovecot_factory)
    server.deliver(user, ticket("Printer on fire"))
    space = space_for(tmp_path, user, smtp_server, REPLY_RULES)
    result = space.run("--now", NOW)
    assert result.code == 0, result.output
    ids = message_ids(snapshot(server, user))
    assert len(ids["Sent Items"]) == 2 and "Sent" not in ids  # the old one and the saved reply


def test_an_unused_trash_fallback_need_not_exist_on_the_server(tmp_path: Path, dovecot_factory) -> None:  # type: ignore[no-untyped-def]
    """trash_folder 'Deleted.Items' can't exist where '.' separates levels, but the server's
    own trash folder makes it unused; without one, it is refused before any change."""
    server, user = outlook_like(dovecot_factory, separator=".", prefix="INBOX.")
    rules = RULES.replace("rules:\n", "defaults: {trash_folder: Deleted.Items}\nrules:\n", 1)
    result = workspace(tmp_path / "marked", user, rules).run("--now", NOW)
    assert result.code == 0, result.output
    assert "<offer-1@t>" in message_ids(snapshot(server, user))["INBOX.Deleted Items"]
    bare = dovecot_factory(special_use={}, separator=".", prefix="INBOX.")
    other = bare.add_user()
    bare.deliver(other, make_message("offer 2", message_id="<offer-2@t>"))
    refused = workspace(tmp_path / "unmarked", other, rules).run("--now", NOW)
    assert refused.code == 6 and "'Deleted.Items'" in refused.stderr, refused.output
    assert message_ids(snapshot(bare, other)) == {"INBOX": {"<offer-2@t>"}}
