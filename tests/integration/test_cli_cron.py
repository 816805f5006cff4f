"""``--quiet`` for cron, and the cron and systemd recipes: cron mails whatever a job prints."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dovecot import Dovecot, User, free_port
from tests.support.workspace import make_message, snapshot, workspace

NOW = "2026-11-20T10:00:00Z"
ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "examples" / "systemd"
RULES = """\
version: 1
rules:
  - name: github
    when: {from: {domain: github.com}}
    then: [{move: Notifications}]
  - name: everything-else
    when: all
    folders: [INBOX, Lists/*]
    then: [{flag: seen}]
"""


def test_a_quiet_run_with_nothing_to_do_prints_nothing(tmp_path: Path, dovecot: Dovecot, imap_user: User) -> None:
    dovecot.deliver(imap_user, make_message("lunch?"), flags="S")
    space = workspace(tmp_path, imap_user, RULES)  # 'when: all' warns, and no folder matches Lists/*
    for command in (space.run, space.plan):
        for extra in ((), ("--new-only",)):
            result = command("--now", NOW, "--quiet", *extra)
            assert (result.code, result.stdout, result.stderr) == (0, "", ""), (command, extra)
    assert space.run("--now", NOW).stdout.count("\n") > 3  # without -q it does say what it looked at


def test_a_quiet_run_that_changes_something_prints_one_line(tmp_path: Path, dovecot: Dovecot,
                                                            imap_user: User) -> None:
    dovecot.deliver(imap_user, make_message("PR #1", "GitHub <notifications@github.com>"))
    dovecot.deliver(imap_user, make_message("PR #2", "GitHub <notifications@github.com>"), flags="S")
    dovecot.deliver(imap_user, make_message("lunch?"))
    space = workspace(tmp_path, imap_user, RULES)
    result = space.run("--now", NOW, "-q")
    assert result.code == 0, result.output
    assert result.stderr == ""
    assert result.stdout == "mailrules: t: flagged 1, moved 2 in INBOX; created Notifications.\n"
    assert sum(snapshot(dovecot, imap_user)["Notifications"].values()) == 2
    again = space.run("--now", NOW, "-q")
    assert (again.code, again.output) == (0, "")


def test_a_quiet_plan_shows_nothing_but_its_exit_code(tmp_path: Path, dovecot: Dovecot, imap_user: User) -> None:
    dovecot.deliver(imap_user, make_message("PR #1", "GitHub <notifications@github.com>"))
    space = workspace(tmp_path, imap_user, RULES)
    result = space.plan("--now", NOW, "-q")
    assert (result.code, result.output) == (0, "")


def test_quiet_still_reports_errors(tmp_path: Path, imap_user: User) -> None:
    space = workspace(tmp_path, imap_user, RULES, port=free_port())  # nothing listens there
    result = space.run("--now", NOW, "-q")
    assert result.code == 3, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("mailrules: error: ") and result.stderr.count("\n") == 1


def test_quiet_and_json_exclude_each_other(tmp_path: Path, imap_user: User) -> None:
    space = workspace(tmp_path, imap_user, RULES)
    result = space.run("--now", NOW, "-q", "--json")
    assert result.code == 2
    assert "not allowed with argument" in result.stderr


def _recipe_arguments(command_line: str) -> list[str]:
    """The arguments after ``mailrules`` in a recipe's command line, as the CLI would get them."""
    words = shlex.split(command_line.replace("%h", "/home/someone"))
    return words[next(i for i, word in enumerate(words) if word.endswith("mailrules")) + 1:]


def test_the_readme_cron_lines_are_quiet_and_valid() -> None:
    from mailrules.cli import _parser

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```cron\n(.*?)```", readme, re.S)
    assert block is not None
    lines = [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]
    assert lines
    for line in lines:
        args = _parser().parse_args(_recipe_arguments(line.split(None, 5)[5]))
        assert args.command == "run" and args.quiet, line


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string((UNITS / name).read_text())
    return parser


# The settings each section of these two units may use (systemd.unit(5), .service(5), .exec(5), .timer(5)).
KNOWN_KEYS = {
    "Unit": {"Description", "Documentation", "After", "Wants"},
    "Service": {"Type", "ExecStart", "SuccessExitStatus", "Nice", "IOSchedulingClass", "Environment"},
    "Timer": {"OnCalendar", "RandomizedDelaySec", "Persistent", "OnBootSec", "OnUnitActiveSec", "AccuracySec"},
    "Install": {"WantedBy"},
}


def test_the_systemd_units_have_the_expected_structure() -> None:
    from mailrules.cli import _parser

    service, timer = _unit("mailrules.service"), _unit("mailrules.timer")
    assert set(service.sections()) == {"Unit", "Service"}
    assert set(timer.sections()) == {"Unit", "Timer", "Install"}
    for unit in (service, timer):
        for section in unit.sections():
            assert set(unit[section]) <= KNOWN_KEYS[section], section
    assert service["Service"]["Type"] == "oneshot"
    args = _parser().parse_args(_recipe_arguments(service["Service"]["ExecStart"]))
    assert (args.command, args.quiet, args.new_only) == ("run", True, True)
    assert "5" in service["Service"]["SuccessExitStatus"].split()  # a run already under way is no failure
    assert re.fullmatch(r"\*:0/\d+", timer["Timer"]["OnCalendar"])
    assert timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    # The units name %h/.local/bin/mailrules (where pipx puts it); verify checks it is executable.
    (tmp_path / ".local" / "bin").mkdir(parents=True)
    (tmp_path / ".local" / "bin" / "mailrules").symlink_to(sys.executable)
    (tmp_path / "run").mkdir(mode=0o700)
    env = os.environ | {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    checked = subprocess.run(["systemd-analyze", "--user", "verify", str(UNITS / "mailrules.service"),
                              str(UNITS / "mailrules.timer")], env=env, capture_output=True, text=True, timeout=60)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")
