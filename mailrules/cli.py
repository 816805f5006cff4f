"""The ``mailrules`` command.  Maps every MailrulesError to its exit code; never a traceback.

Exit codes (the README's table says what to do about each):

    0        ok, or nothing to do
    1        rule tests failed, or a run finished with failed sends
    2        invalid rule, test or accounts file, or bad usage
    3        transient mail server, network, Maildir or SMTP failure: run again
    4        plan refused (UIDVALIDITY changed, or too many deletions without --yes)
    5        another run holds the account's lock
    6        permanent failure: authentication, configuration (unknown account, missing
             Maildir, TLS settings), unsupported feature, refused folder name, state
             store -- fix it, then run again
    70       internal error
    130/143  interrupted by SIGINT / SIGTERM
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TextIO

from mailrules.errors import MailrulesError, RuleFileError, UsageError, forget_secrets
from mailrules.terminal import Printable


def main(argv: Sequence[str] | None = None) -> int:
    from mailrules.signals import handled

    with handled():  # first: a signal at any later moment ends in one line and its exit code
        forget_secrets()
        try:
            parser = _parser()
            args = parser.parse_args(argv)
            with contextlib.redirect_stdout(Printable(sys.stdout)), contextlib.redirect_stderr(Printable(sys.stderr)):  # type: ignore[type-var]
                return _dispatch(args)
        except KeyboardInterrupt as exc:
            return _interrupted(exc)


def _interrupted(exc: KeyboardInterrupt) -> int:
    from mailrules.errors import Interrupted

    error = Interrupted(getattr(exc, "signal_number", 2))
    print(f"mailrules: {error}", file=sys.stderr)
    return error.exit_code


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args, sys.stdout) or 0)
    except RuleFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return exc.exit_code
    except MailrulesError as exc:
        print(f"mailrules: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - a bug must still end in one clear line, not a traceback
        if os.environ.get("MAILRULES_DEBUG"):
            raise
        print(f"mailrules: internal error: {type(exc).__name__}: {exc} "
              "(nothing more was changed; set MAILRULES_DEBUG=1 for a traceback and please report it)", file=sys.stderr)
        return 70


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailrules", description="Sieve-like mail filtering driven by YAML rules.")
    parser.add_argument("--version", action=_ShowVersion)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_validate(commands)
    _add_explain(commands)
    _add_test(commands)
    _add_compile(commands)
    for name in ("plan", "run"):
        _add_mailbox_command(commands, name)
    _add_history(commands)
    _add_diff(commands)
    _add_undo(commands)
    _add_auth(commands)
    return parser


class _ShowVersion(argparse.Action):
    """``--version``, looked up only when asked for: importlib.metadata costs every run ~20 ms."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object):
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(f"mailrules {_version()}")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mailrules")
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------- validate


def _add_validate(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = commands.add_parser("validate", help="check a rule file (schema and semantics), offline")
    cmd.add_argument("rules")
    cmd.add_argument("--json", action="store_true", help="the verdict and every problem as JSON")
    cmd.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace, out: TextIO) -> int:
    from mailrules.loader import load_ruleset

    if args.json:
        return _validate_json(args.rules, out)
    loaded = load_ruleset(args.rules)
    for warning in loaded.warnings:
        print(warning, file=sys.stderr)
    count, files = len(loaded.ruleset.rules), len(loaded.ruleset.files)
    print(f"{args.rules}: ok ({count} rules from {files} file{'s' if files != 1 else ''})", file=out)
    return 0


def _validate_json(rules: str, out: TextIO) -> int:
    """``validate --json``: ``ok``, ``rules``, ``files`` and ``problems`` (docs/operations.md)."""
    import json

    from mailrules.loader import load_ruleset
    from mailrules.render import problem_json

    try:
        loaded = load_ruleset(rules)
    except RuleFileError as exc:
        verdict = {"path": rules, "ok": False, "rules": 0, "files": [],
                   "problems": [problem_json(problem) for problem in exc.problems]}
        print(json.dumps(verdict, indent=2, ensure_ascii=False), file=out)
        return exc.exit_code
    verdict = {"path": rules, "ok": True, "rules": len(loaded.ruleset.rules), "files": list(loaded.ruleset.files),
               "problems": [problem_json(problem) for problem in loaded.warnings]}
    print(json.dumps(verdict, indent=2, ensure_ascii=False), file=out)
    return 0


# ---------------------------------------------------------------- explain


def _add_explain(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = commands.add_parser("explain", help="show which rules match a message file and why")
    cmd.add_argument("rules")
    cmd.add_argument("message", help="an .eml file")
    cmd.add_argument("--folder", default="INBOX", help="the folder the message is in (default INBOX)")
    cmd.add_argument("--flags", action="append", default=[], help="flags it has, comma-separated or repeated")
    cmd.add_argument("--now", help="the clock, e.g. 2026-11-20T10:00:00Z")
    cmd.add_argument("--json", action="store_true", help="one JSON object (matched rules and outcome)")
    cmd.add_argument("--address", action="append", default=[],
                     help="the account's own address, for the reply checks (repeatable)")
    cmd.set_defaults(handler=_explain)


def _explain(args: argparse.Namespace, out: TextIO) -> int:
    from mailrules.explain import explain_file

    print(explain_file(args.rules, args.message, folder=args.folder, flags=split_flags(args.flags),
                       now=parse_now(args.now), as_json=args.json, addresses=tuple(args.address)), file=out)
    return 0


def split_flags(values: Sequence[str]) -> list[str]:
    return [flag.strip() for value in values for flag in value.split(",") if flag.strip()]


def parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--now {text!r} is not a date-time like 2026-11-20T10:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------- test


def _add_test(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = commands.add_parser("test", help="run rule tests (.test.yaml files) offline")
    cmd.add_argument("testfiles", nargs="+", help="test files, or folders: every *.test.yaml under them")
    cmd.add_argument("--json", action="store_true", help="every case's result as JSON")
    cmd.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML, for CI dashboards")
    cmd.set_defaults(handler=_test)


def _test(args: argparse.Namespace, out: TextIO) -> int:
    from mailrules.ruletest import run_test_files

    return run_test_files(args.testfiles, out, as_json=args.json, junit=args.junit)


# ---------------------------------------------------------------- compile


def _add_compile(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = commands.add_parser("compile", help="show the IMAP SEARCH of each rule, or a Sieve script")
    cmd.add_argument("rules")
    cmd.add_argument("--to", choices=("imap", "sieve"), default="imap")
    cmd.add_argument("--now", help="the clock for age conditions")
    cmd.set_defaults(handler=_compile)


def _compile(args: argparse.Namespace, out: TextIO) -> int:
    from mailrules.loader import load_ruleset

    ruleset = load_ruleset(args.rules).ruleset
    if args.to == "sieve":
        from mailrules.sieve import to_sieve

        print(to_sieve(ruleset), file=out)
        return 0
    from mailrules.search import render_imap, volatile_flags_before

    rules = ruleset.enabled_rules
    for rule, volatile in zip(rules, volatile_flags_before(rules)):
        print(f"{rule.name}  (folders: {', '.join(rule.folders)})", file=out)
        print("  " + render_imap(rule, volatile_flags=volatile, now=parse_now(args.now)).replace("\n", "\n  "),
              file=out)
    return 0


# ---------------------------------------------------------------- plan / run


def _add_mailbox_command(commands: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    helps = {"plan": "dry-run: read the mailbox and print what would happen; changes nothing",
             "run": "build the plan and carry it out"}
    cmd = commands.add_parser(name, help=helps[name])
    cmd.add_argument("rules")
    where = cmd.add_mutually_exclusive_group()
    where.add_argument("--account", help="account name from the accounts file")
    where.add_argument("--maildir", help="use a local Maildir instead of an account")
    cmd.add_argument("--accounts", help="accounts file (default ~/.config/mailrules/accounts.yaml)")
    cmd.add_argument("--state", help="state database (default ~/.local/state/mailrules/state.sqlite3)")
    cmd.add_argument("--now", help="the clock for age conditions, e.g. 2026-11-20T10:00:00Z")
    cmd.add_argument("--new-only", action="store_true", help="only messages that arrived since the last run")
    output = cmd.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the whole plan (and report) as JSON")
    output.add_argument("-q", "--quiet", action="store_true",
                        help="for cron: print only errors and, for run, one summary line when something changed")
    cmd.add_argument("-v", "--verbose", action="count", default=0, help="show IMAP commands (passwords redacted)")
    if name == "run":
        cmd.add_argument("--dry-run", action="store_true", help="same as `mailrules plan`")
        cmd.add_argument("--yes", action="store_true", help="allow a run that trashes/deletes more than the threshold")
    cmd.set_defaults(handler=_mailbox_command)


def _mailbox_command(args: argparse.Namespace, out: TextIO) -> int:
    from mailrules.runner import RunRequest, plan_command, run_command

    request = RunRequest(
        rules=args.rules,
        account=args.account,
        maildir=args.maildir,
        accounts_file=args.accounts,
        state_file=args.state,
        now=parse_now(args.now),
        new_only=args.new_only,
        confirmed=getattr(args, "yes", False),
        as_json=args.json,
        verbose=args.verbose,
        quiet=args.quiet,
    )
    # `run --dry-run` is `plan`: the same request, only rendered.
    dry_run = args.command == "plan" or getattr(args, "dry_run", False)
    return (plan_command if dry_run else run_command)(request, out)


# ---------------------------------------------------------------- history


def _add_history(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = commands.add_parser("history", help="recent runs from the journal, or one run's operations")
    cmd.add_argument("run", nargs="?", type=_run_id, help="a run's number (#12 or 12): its operations, and why it failed")
    cmd.add_argument("--account")
    cmd.add_argument("--accounts", help="accounts file, to tell an account that never ran from a typo")
    cmd.add_argument("--state", help="state database")
    cmd.add_argument("--limit", type=int, default=20)
    cmd.add_argument("--json", action="store_true", help="the runs as JSON (keys in docs/operations.md)")
    cmd.set_defaults(handler=_history)


def _history(args: argparse.Namespace, out: TextIO) -> int:
    from mailrules.runner import show_history

    return show_history(args.state, args.account, args.limit, out, accounts_file=args.accounts, run_id=args.run,
                        as_json=args.json)


def _run_id(text: str) -> int:
    try:
        return int(text.removeprefix("#"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a run number like 12") from None


# ---------------------------------------------------------------- diff


def _add_diff(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = commands.add_parser("diff", help="what a rule change would do differently, message by message; "
                                           "read-only")
    cmd.add_argument("old", help="the rules before: a file, or git:REV:path for the file at a git revision")
    cmd.add_argument("new", help="the rules after: a file, or git:REV:path")
    where = cmd.add_mutually_exclusive_group()
    where.add_argument("--fixtures", help="a folder of .eml files (subfolders name mail folders; top level is INBOX)")
    where.add_argument("--maildir", help="a local Maildir")
    where.add_argument("--account", help="account name from the accounts file")
    cmd.add_argument("--accounts", help="accounts file (default ~/.config/mailrules/accounts.yaml)")
    cmd.add_argument("--now", help="the clock for age conditions, e.g. 2026-11-20T10:00:00Z")
    output = cmd.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="the differences as JSON")
    output.add_argument("--format", choices=("text", "markdown"), default="text",
                        help="markdown: for a comment on a pull request")
    cmd.add_argument("-v", "--verbose", action="count", default=0, help="show IMAP commands (passwords redacted)")
    cmd.set_defaults(handler=_diff)


def _diff(args: argparse.Namespace, out: TextIO) -> int:
    from mailrules.diff import DiffRequest, run_diff

    return run_diff(DiffRequest(old=args.old, new=args.new, now=parse_now(args.now), fixtures=args.fixtures,
                                maildir=args.maildir, account=args.account, accounts_file=args.accounts,
                                as_json=args.json, fmt=args.format, verbose=args.verbose), out)


# ---------------------------------------------------------------- undo


def _add_undo(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = commands.add_parser("undo", help="put back what a run did, from the journal: shown first, done with --yes")
    cmd.add_argument("run", type=_run_id, help="the run's number (#12 or 12), from `mailrules history`")
    cmd.add_argument("--account", help="the run's account (a check: the run must be of this account)")
    cmd.add_argument("--accounts", help="accounts file (default ~/.config/mailrules/accounts.yaml)")
    cmd.add_argument("--state", help="state database (default ~/.local/state/mailrules/state.sqlite3)")
    cmd.add_argument("--now", help="the clock the undo is journalled at")
    cmd.add_argument("--yes", action="store_true", help="carry the undo plan out")
    cmd.add_argument("--json", action="store_true", help="print the undo plan (and, with --yes, the report) as JSON")
    cmd.add_argument("-v", "--verbose", action="count", default=0, help="show IMAP commands (passwords redacted)")
    cmd.set_defaults(handler=_undo)


def _undo(args: argparse.Namespace, out: TextIO) -> int:
    from mailrules.undo import UndoRequest, run_undo

    return run_undo(UndoRequest(run_id=args.run, now=parse_now(args.now), account=args.account,
                                accounts_file=args.accounts, state_file=args.state, confirmed=args.yes,
                                verbose=args.verbose, as_json=args.json), out)


# ---------------------------------------------------------------- auth


def _add_auth(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = commands.add_parser("auth", help="sign an oauth2 account in once (device code or browser); "
                                           "later runs refresh the token silently")
    cmd.add_argument("account", help="account name from the accounts file")
    cmd.add_argument("--accounts", help="accounts file (default ~/.config/mailrules/accounts.yaml)")
    cmd.add_argument("--state", help="state database whose directory holds the token file when there is no "
                                     "system keyring (default ~/.local/state/mailrules/state.sqlite3)")
    cmd.set_defaults(handler=_auth)


def _auth(args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    from mailrules.accounts import load_accounts
    from mailrules.oauth.grants import authorize, check_imap_sign_in
    from mailrules.state import default_state_path

    account = load_accounts(args.accounts).pick(args.account)
    state_dir = (Path(args.state) if args.state else default_state_path()).parent
    done = authorize(account, state_dir, out)
    print(f"account {done.account!r} is signed in; its refresh token is stored in {done.stored_in}", file=out)
    if account.imap is not None and account.imap.oauth2 is not None:
        from mailrules.backends.imap import ImapMailbox
        from mailrules.backends.open import open_mailbox

        mailbox = open_mailbox(account, 0, state_dir)
        assert isinstance(mailbox, ImapMailbox)
        check_imap_sign_in(mailbox, account, out)
    return 0
