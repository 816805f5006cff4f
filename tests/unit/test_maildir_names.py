"""Maildir++ folder names as Dovecot stores them: dots escaped, non-ASCII in modified UTF-7."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailrules.backends.base import FetchNeeds
from mailrules.backends.maildir import MaildirMailbox, folder_directory, folder_name
from tests.support.cli import run_cli

MESSAGE = b"From: ops@example.org\r\nSubject: release v1.2\r\n\r\nnotes\r\n"


def _maildir(root: Path, folders: tuple[str, ...] = ()) -> Path:
    for directory in (root, *(root / name for name in folders)):
        for sub in ("cur", "new", "tmp"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
    return root


@pytest.mark.parametrize("folder, directory", [
    ("Ops/v1.2", ".Ops.v1\\2e2"),
    ("Grüße/Köln", ".Gr&APwA3w-e.K&APY-ln"),
    ("日本語/v2.0", ".&ZeVnLIqe-.v2\\2e0"),
    ("Grü.ße", ".Gr&APw-\\2e&AN8-e"),
    ("a&b.c", ".a&-b\\2ec"),
    ("back\\slash", ".back\\5cslash"),
    ("x\\2ey", ".x\\5c2ey"),
    ("~tilde", ".\\7etilde"),
    ("INBOX/Sub.1", ".INBOX.Sub\\2e1"),
])
def test_folder_names_are_stored_as_dovecot_stores_them_and_read_back(folder: str, directory: str) -> None:
    # The directory names are the ones Dovecot 2.3 (with listescape for the dots) creates.
    assert folder_directory(folder) == directory
    assert folder_name(directory) == folder


def test_a_folder_with_a_dot_round_trips_through_create_list_append_and_open(tmp_path: Path) -> None:
    box = MaildirMailbox(_maildir(tmp_path / "m"))
    box.create_folder("Ops/v1.2")
    box.create_folder("Ops/v1")
    assert box.list_folders() == ["INBOX", "Ops/v1", "Ops/v1.2"]
    box.append("Ops/v1.2", MESSAGE, ["\\Seen"])
    assert box.open_folder("Ops/v1.2", readonly=True).exists == 1
    assert box.open_folder("Ops/v1", readonly=True).exists == 0
    assert (tmp_path / "m" / ".Ops.v1\\2e2" / "cur").is_dir()


def test_a_folder_another_tool_wrote_in_raw_utf8_is_listed_and_used_not_duplicated(tmp_path: Path) -> None:
    root = _maildir(tmp_path / "m", (".Grüße",))
    box = MaildirMailbox(root)
    assert box.list_folders() == ["INBOX", "Grüße"]
    box.append("Grüße", MESSAGE, [])
    assert len(list((root / ".Grüße" / "cur").iterdir())) == 1
    assert not (root / folder_directory("Grüße")).exists()


def test_a_move_to_a_dotted_folder_is_planned_once_and_a_rerun_has_nothing_to_do(tmp_path: Path) -> None:
    root = _maildir(tmp_path / "m")
    (root / "cur" / "1.M1P1.host:2,").write_bytes(MESSAGE)
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  - name: releases\n    when: {subject: release}\n"
                     "    then: [{copy: Grüße/Köln}, {move: Ops/v1.2}]\n")
    args = [str(rules), "--maildir", str(root), "--state", str(tmp_path / "s.db")]
    first = run_cli(["run", *args])
    assert first.code == 0, first.output
    assert "Created folder Ops/v1.2" in first.stdout
    again = run_cli(["plan", *args])
    assert "Nothing to do." in again.stdout and "Folders to create" not in again.stdout
    box = MaildirMailbox(root)
    assert box.list_folders() == ["INBOX", "Grüße/Köln", "Ops/v1.2"]
    for folder in ("Grüße/Köln", "Ops/v1.2"):
        box.open_folder(folder, readonly=True)
        assert [message.subject for _, message in box.fetch([1], FetchNeeds())] == ["release v1.2"]


def test_a_folder_name_too_long_for_a_maildir_is_refused_at_its_rule_before_any_change(tmp_path: Path) -> None:
    root = _maildir(tmp_path / "m")
    (root / "cur" / "1.M1P1.host:2,").write_bytes(MESSAGE)
    rules = tmp_path / "rules.yaml"
    long_name = "Projekte/" + "Überlänge" * 30
    rules.write_text(f"version: 1\nrules:\n  - name: file\n    when: {{subject: release}}\n"
                     f"    then:\n      - flag: seen\n      - move: {long_name}\n")
    before = sorted(path.name for path in root.rglob("*"))
    for command in ("plan", "run"):
        result = run_cli([command, str(rules), "--maildir", str(root), "--state", str(tmp_path / "s.db")])
        assert result.code == 6, result.output
        assert f"{rules}:7:9: error: rule 'file': folder {long_name!r} can't exist in this Maildir:" in result.stderr
        assert "longer than the 255 a file name can have" in result.stderr
        assert "Traceback" not in result.output
    assert sorted(path.name for path in root.rglob("*")) == before
