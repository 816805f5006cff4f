"""Exit codes a cron wrapper can act on: 3 "run again" versus 6 "fix me", on a real Dovecot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.dovecot import Dovecot, User, free_port
from tests.support.faultproxy import Cut, FaultProxy
from tests.support.workspace import PASSWORD_ENV, make_message, run_cli, snapshot, workspace

NOW = "2026-11-20T10:00:00Z"
MOVE_ALL = "version: 1\nrules:\n  - name: file\n    when: all\n    then: [{{move: \"{dest}\"}}]\n"


def test_a_wrong_password_exits_6(tmp_path: Path, dovecot: Dovecot, imap_user: User,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    dovecot.deliver(imap_user, make_message("hello"))
    space = workspace(tmp_path, imap_user, MOVE_ALL.format(dest="Archive"))
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    before = snapshot(dovecot, imap_user)
    for result in (space.plan("--now", NOW), space.run("--now", NOW)):
        assert result.code == 6, result.output
        assert f"login failed for user {imap_user.username}" in result.stderr
        assert "AUTHENTICATIONFAILED" in result.stderr and "Traceback" not in result.output
        assert "not-the-password" not in result.output
    assert snapshot(dovecot, imap_user) == before


def test_a_server_that_is_down_stays_exit_3(tmp_path: Path, imap_user: User) -> None:
    space = workspace(tmp_path, imap_user, MOVE_ALL.format(dest="Archive"), port=free_port())
    result = space.run("--now", NOW)
    assert result.code == 3, result.output
    assert "cannot connect to" in result.stderr


def test_a_connection_cut_during_login_stays_exit_3(tmp_path: Path, dovecot: Dovecot, imap_user: User) -> None:
    with FaultProxy(dovecot.host, dovecot.port) as counting:
        space = workspace(tmp_path, imap_user, MOVE_ALL.format(dest="Archive"), host=counting.host,
                          port=counting.port)
        assert space.plan("--now", NOW).code == 0
    login = counting.command_names().index("LOGIN") + 1
    with FaultProxy(dovecot.host, dovecot.port, cut=Cut(login, "after", stay_down=True)) as proxy:
        space = workspace(tmp_path, imap_user, MOVE_ALL.format(dest="Archive"), host=proxy.host, port=proxy.port)
        result = space.run("--now", NOW)
    assert result.code == 3, result.output
    assert "lost during login" in result.stderr


@pytest.mark.parametrize("name", ["Lists/python.org", "~backup"])
def test_a_folder_name_the_server_refuses_exits_6_and_moves_nothing(
        tmp_path: Path, dovecot: Dovecot, imap_user: User, name: str) -> None:
    dovecot.deliver(imap_user, make_message("from the list"))
    space = workspace(tmp_path, imap_user, MOVE_ALL.format(dest=name))
    result = space.run("--now", NOW)
    assert result.code == 6, result.output
    assert "can't create this folder: [CANNOT]" in result.stderr and name in result.stderr
    assert "choose another name in the rules" in result.stderr
    assert sum(snapshot(dovecot, imap_user)["INBOX"].values()) == 1


def test_an_unknown_account_exits_6(tmp_path: Path, imap_user: User) -> None:
    space = workspace(tmp_path, imap_user, MOVE_ALL.format(dest="Archive"))
    args = space.args("plan", "--now", NOW)
    args[args.index("--account") + 1] = "nosuch"
    result = run_cli(args)
    assert result.code == 6, result.output
    assert "unknown account 'nosuch'" in result.stderr


def _maildir_rules(tmp_path: Path, dest: str = "Archive") -> str:
    rules = tmp_path / "rules.yaml"
    rules.write_text(MOVE_ALL.format(dest=dest))
    return str(rules)


def test_a_missing_maildir_exits_6(tmp_path: Path) -> None:
    rules, state = _maildir_rules(tmp_path), str(tmp_path / "state.sqlite3")
    missing = tmp_path / "Mail"
    result = run_cli(["run", rules, "--maildir", str(missing), "--state", state])
    assert result.code == 6, result.output
    assert f"the Maildir {missing} does not exist" in result.stderr
    (tmp_path / "accounts.yaml").write_text("accounts:\n  home:\n    maildir: Mail\n")
    via_account = run_cli(["plan", rules, "--accounts", str(tmp_path / "accounts.yaml"), "--state", state])
    assert via_account.code == 6, via_account.output
    missing.mkdir()
    not_a_maildir = run_cli(["plan", rules, "--maildir", str(missing), "--state", state])
    assert not_a_maildir.code == 6 and "is not a Maildir (no cur/ folder)" in not_a_maildir.stderr


def test_a_folder_name_a_maildir_cannot_hold_exits_6_before_any_change(tmp_path: Path) -> None:
    maildir = tmp_path / "Mail"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.msg").write_bytes(make_message("from the list"))
    result = run_cli(["run", _maildir_rules(tmp_path, "Lists/" + "x" * 300), "--maildir", str(maildir),
                      "--state", str(tmp_path / "state.sqlite3")])
    assert result.code == 6, result.output
    assert "can't exist in" in result.stderr
    assert sorted(path.name for path in maildir.iterdir()) == ["cur", "new", "tmp"]
    assert len(os.listdir(maildir / "new")) == 1


def test_history_of_an_unknown_account_exits_6(tmp_path: Path, dovecot: Dovecot, imap_user: User) -> None:
    space = workspace(tmp_path, imap_user, MOVE_ALL.format(dest="Archive"))
    state = ["--state", str(space.state)]
    typo = run_cli(["history", "--account", "nosuch", *state])
    assert typo.code == 6, typo.output
    assert "unknown account 'nosuch'" in typo.stderr
    never_ran = run_cli(["history", "--account", "t", "--accounts", str(space.accounts), *state])
    assert (never_ran.code, never_ran.stdout) == (0, "no runs recorded\n")
    assert space.run("--now", NOW).code == 0
    after = run_cli(["history", "--account", "t", *state])
    assert after.code == 0 and " t " in after.stdout
    still_typo = run_cli(["history", "--account", "nosuch", *state])
    assert still_typo.code == 6 and "known accounts: t" in still_typo.stderr


def test_an_unusable_state_file_exits_6(tmp_path: Path) -> None:
    (tmp_path / "Mail" / "cur").mkdir(parents=True)
    (tmp_path / "blocker").write_text("a file where the state directory should be\n")
    result = run_cli(["plan", _maildir_rules(tmp_path), "--maildir", str(tmp_path / "Mail"),
                      "--state", str(tmp_path / "blocker" / "state.sqlite3")])
    assert result.code == 6, result.output
    assert "can't use the state file" in result.stderr


def test_a_state_file_that_refuses_writes_is_a_state_store_error(tmp_path: Path) -> None:
    from mailrules.errors import StateStoreError
    from mailrules.state import State

    with State(tmp_path / "state.sqlite3") as state:
        state._db.execute("PRAGMA query_only = ON")  # as a full disk or read-only file would refuse
        with pytest.raises(StateStoreError, match="can't write the state file .*readonly"):
            state.begin_run("t", "run")
