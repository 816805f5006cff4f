"""``delete_threshold`` means what it says, 0 included: the CLI against a real Dovecot."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.dovecot import Dovecot, User
from tests.support.workspace import make_message, run_cli, snapshot, workspace

NOW = "2026-11-20T10:00:00Z"


@pytest.mark.parametrize("action", ["trash", "delete"])
def test_threshold_zero_makes_every_removal_ask_for_yes(tmp_path: Path, dovecot: Dovecot, imap_user: User,
                                                        action: str) -> None:
    dovecot.deliver(imap_user, make_message("old report"))
    dovecot.deliver(imap_user, make_message("keep me"))
    space = workspace(tmp_path, imap_user, "version: 1\nrules:\n  - name: purge\n    when: {subject: old}\n"
                                           f"    then: [{action}]\n", extra="    delete_threshold: 0\n")
    before = snapshot(dovecot, imap_user)
    refused = space.run("--now", NOW)
    assert refused.code == 4, refused.output
    assert "would trash or delete 1 messages (more than 0)" in refused.stderr
    assert snapshot(dovecot, imap_user) == before
    confirmed = space.run("--now", NOW, "--yes")
    assert confirmed.code == 0, confirmed.output
    assert sum(snapshot(dovecot, imap_user)["INBOX"].values()) == 1


def test_threshold_zero_lets_runs_without_removals_through(tmp_path: Path, dovecot: Dovecot,
                                                           imap_user: User) -> None:
    dovecot.deliver(imap_user, make_message("read me"))
    space = workspace(tmp_path, imap_user, "version: 1\nrules:\n  - name: seen\n    when: all\n"
                                           "    then: [{flag: seen}]\n", extra="    delete_threshold: 0\n")
    result = space.run("--now", NOW)
    assert result.code == 0, result.output


def test_an_empty_account_name_is_not_the_default_account(tmp_path: Path) -> None:
    (tmp_path / "Maildir" / "cur").mkdir(parents=True)
    (tmp_path / "rules.yaml").write_text("version: 1\nrules:\n  - name: r\n    when: all\n    then: [{flag: seen}]\n")
    (tmp_path / "accounts.yaml").write_text("accounts:\n  home:\n    maildir: Maildir\n")
    result = run_cli(["plan", str(tmp_path / "rules.yaml"), "--accounts", str(tmp_path / "accounts.yaml"),
                      "--account", "", "--state", str(tmp_path / "state.sqlite3")])
    assert result.code == 6, result.output
    assert "unknown account ''" in result.stderr
