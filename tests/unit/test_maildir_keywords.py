"""Maildir keywords kept as Dovecot keeps them: ``dovecot-keywords`` and letters a-z in the file name."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mailrules.backends import maildir
from mailrules.backends.base import FetchNeeds
from mailrules.backends.maildir import MaildirMailbox
from mailrules.errors import BackendError
from mailrules.loader import load_ruleset
from mailrules.planner import PlanOptions, build_plan
from mailrules.render import render_plan
from mailrules.query import EVERYTHING

NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)


def _maildir(root: Path, *names: str) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        (root / "cur" / name).write_bytes(f"Subject: m{index}\r\n\r\nbody\r\n".encode())
    return root


def _flags(box: MaildirMailbox, folder: str = "INBOX") -> list[frozenset[str]]:
    box.open_folder(folder, readonly=True)
    return [message.flags for _, message in box.fetch(box.search(EVERYTHING), FetchNeeds())]


def test_a_keyword_gets_a_letter_after_the_system_flags_and_a_line_in_dovecot_keywords(tmp_path: Path) -> None:
    root = _maildir(tmp_path / "m", "1.M1P1.host:2,S")
    box = MaildirMailbox(root)
    box.open_folder("INBOX", readonly=False)
    box.add_flags([1], ["$Invoice", "\\Flagged"])
    box.add_flags([1], ["$CI"])
    assert [path.name for path in (root / "cur").iterdir()] == ["1.M1P1.host:2,FSab"]
    assert (root / "dovecot-keywords").read_text() == "0 $Invoice\n1 $CI\n"
    assert _flags(box) == [{"\\Seen", "\\Flagged", "$Invoice", "$CI"}]
    box.open_folder("INBOX", readonly=False)
    box.remove_flags([1], ["$invoice", "\\Seen"])  # keywords compare case-insensitively
    assert [path.name for path in (root / "cur").iterdir()] == ["1.M1P1.host:2,Fb"]


def test_keywords_written_by_dovecot_are_read_and_reused(tmp_path: Path) -> None:
    root = _maildir(tmp_path / "m", "1.M1P1.host:2,Sac", "2.M2P1.host:2,")
    (root / "dovecot-keywords").write_text("0 $Family\n2 Junk\n")
    box = MaildirMailbox(root)
    assert _flags(box) == [{"\\Seen", "$Family", "Junk"}, frozenset()]
    box.open_folder("INBOX", readonly=False)
    box.add_flags([2], ["junk", "$New"])  # Junk keeps c; $New takes the first free slot, b
    assert sorted(path.name for path in (root / "cur").iterdir()) == ["1.M1P1.host:2,Sac", "2.M2P1.host:2,bc"]
    assert (root / "dovecot-keywords").read_text() == "0 $Family\n1 $New\n2 Junk\n"


def test_a_copy_carries_its_keywords_under_the_destinations_letters(tmp_path: Path) -> None:
    root = _maildir(tmp_path / "m", "1.M1P1.host:2,b")
    (root / "dovecot-keywords").write_text("0 $A\n1 $B\n")
    box = MaildirMailbox(root)
    box.create_folder("Archive")
    box.open_folder("INBOX", readonly=False)
    original = (root / "cur" / "1.M1P1.host:2,b").read_bytes()
    box.move([1], "Archive")
    [copied] = (root / ".Archive" / "cur").iterdir()
    assert copied.name.endswith(":2,a") and copied.read_bytes() == original
    assert (root / ".Archive" / "dovecot-keywords").read_text() == "0 $B\n"
    assert list((root / "cur").iterdir()) == []


def test_a_folder_with_26_keywords_refuses_a_27th_in_the_plan_not_halfway_through_the_run(tmp_path: Path) -> None:
    root = _maildir(tmp_path / "m", "1.M1P1.host:2,")
    (root / "dovecot-keywords").write_text("".join(f"{index} $K{index}\n" for index in range(26)))
    box = MaildirMailbox(root)
    assert box.unstorable_flags("INBOX", {"$K3", "\\Seen"}) == {}
    assert set(box.unstorable_flags("INBOX", {"$New", "$K3"})) == {"$New"}
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text("version: 1\nrules:\n  - name: tag\n    when: {subject: m0}\n"
                         "    then: [{flag: [$New, $K3, seen]}]\n")
    plan = build_plan(load_ruleset(rule_file).ruleset, box, PlanOptions(now=NOW))
    [inbox] = plan.folders
    assert [(change.flags, change.uids) for change in inbox.flag_changes] == [(("$K3", "\\Seen"), (1,))]
    assert [(skip.action, skip.uids) for skip in inbox.skipped] == [("flag +$New", (1,))]
    text = render_plan(plan)
    assert "skip flag +$New" in text and "already has 26 keywords in dovecot-keywords" in text


@pytest.mark.parametrize("contents", ["garbage\n", "x $A\n", "99 $Far\n", "0\n"])
def test_a_damaged_dovecot_keywords_line_is_ignored(tmp_path: Path, contents: str) -> None:
    root = _maildir(tmp_path / "m", "1.M1P1.host:2,ab")
    (root / "dovecot-keywords").write_text(contents + "1 $Good\n")
    assert _flags(MaildirMailbox(root)) == [{"$Good"}]


def test_a_destination_with_26_keywords_is_named_in_the_plan_and_the_run_report(tmp_path: Path) -> None:
    root = _maildir(tmp_path / "m", "1.M1P1.host:2,a")
    (root / "dovecot-keywords").write_text("0 $Project\n")
    box = MaildirMailbox(root)
    box.create_folder("Archive")
    (root / ".Archive" / "dovecot-keywords").write_text("".join(f"{index} $K{index}\n" for index in range(26)))
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text("version: 1\nrules:\n  - name: file\n    when: {subject: m0}\n    then: [{move: Archive}]\n")
    plan = build_plan(load_ruleset(rule_file).ruleset, box, PlanOptions(now=NOW))
    assert any(warning.startswith("Archive: no keyword letter left for $Project") for warning in plan.warnings)
    box.open_folder("INBOX", readonly=False)
    box.move([1], "Archive")
    assert any("Archive: no keyword letter left for $Project" in notice for notice in box.notices)
    assert _flags(box, "Archive") == [frozenset()]


def test_a_keyword_dovecot_adds_while_holding_its_lock_is_kept_and_ours_takes_another_letter(tmp_path: Path) -> None:
    root = _maildir(tmp_path / "m", "1.M1P1.host:2,")
    box = MaildirMailbox(root)
    box.open_folder("INBOX", readonly=False)
    lock = root / "dovecot-keywords.lock"
    lock.write_text("")  # Dovecot is writing its table

    def dovecot_finishes() -> None:
        time.sleep(0.3)
        (root / "dovecot-keywords").write_text("0 $FromDovecot\n")
        lock.unlink()

    writer = threading.Thread(target=dovecot_finishes)
    writer.start()
    box.add_flags([1], ["$Ours"])
    writer.join()
    assert (root / "dovecot-keywords").read_text() == "0 $FromDovecot\n1 $Ours\n"
    assert [path.name for path in (root / "cur").iterdir()] == ["1.M1P1.host:2,b"]
    assert not lock.exists()


def test_a_keywords_lock_left_by_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    root = _maildir(tmp_path / "m", "1.M1P1.host:2,")
    lock = root / "dovecot-keywords.lock"
    lock.write_text("")
    old = time.time() - maildir.KEYWORDS_LOCK_STALE_SECONDS - 5
    os.utime(lock, (old, old))
    box = MaildirMailbox(root)
    box.open_folder("INBOX", readonly=False)
    box.add_flags([1], ["$Ours"])
    assert (root / "dovecot-keywords").read_text() == "0 $Ours\n"


def test_a_keywords_lock_held_too_long_is_a_transient_error_and_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maildir, "KEYWORDS_LOCK_WAIT_SECONDS", 0.2)
    root = _maildir(tmp_path / "m", "1.M1P1.host:2,")
    (root / "dovecot-keywords.lock").write_text("")
    box = MaildirMailbox(root)
    box.open_folder("INBOX", readonly=False)
    with pytest.raises(BackendError, match="held by another program"):
        box.add_flags([1], ["$Ours"])
    assert BackendError("x").exit_code == 3
    assert [path.name for path in (root / "cur").iterdir()] == ["1.M1P1.host:2,"]
    assert not (root / "dovecot-keywords").exists()
