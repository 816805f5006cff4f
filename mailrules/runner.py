"""``plan`` and ``run``: the edges (accounts, lock, state, mailbox, SMTP) around the pure core.

Both commands go through ``prepare`` and ``make_plan``; the only difference is what
happens to the Plan value at the end: ``plan_command`` renders it, ``run_command``
settles what an interrupted run left, renders the plan and executes it (alembic's
offline/online split without a mode flag further down).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mailrules.backends.open import open_mailbox, open_sender
from mailrules.errors import ConfigurationError, NeedsConfirmation, UsageError
from mailrules.journal import StateJournal, StateReader
from mailrules.terminal import TerminalProgress

if TYPE_CHECKING:
    from mailrules.accounts import Account
    from mailrules.backends.base import Mailbox
    from mailrules.execute import PendingOperation
    from mailrules.model import RuleSet
    from mailrules.plan import Plan
    from mailrules.state import State


@dataclass(frozen=True, slots=True)
class RunRequest:
    rules: str
    account: str | None
    maildir: str | None
    accounts_file: str | None
    state_file: str | None
    now: datetime
    new_only: bool
    confirmed: bool
    as_json: bool
    verbose: int = 0
    quiet: bool = False  # cron: errors only, and one summary line when a run changed something


@dataclass(frozen=True, slots=True)
class Prepared:
    """What both commands stand on: the rules, the account, its state and its open mailbox."""

    ruleset: RuleSet
    account: Account
    state: State
    mailbox: Mailbox
    journal: StateJournal
    pending: list[PendingOperation]


# Taken after the state opens and before the mailbox does: ``run`` holds the account's locks there.
Guard = Callable[[ExitStack, "State", "Account"], None]


def prepare(request: RunRequest, stack: ExitStack, guard: Guard | None = None) -> Prepared:
    """Load the rules and the account, open the state and the mailbox (closed by ``stack``),
    and check every folder the rules name before anything reads or changes one."""
    from mailrules.cache import load_ruleset_cached
    from mailrules.planner import check_folder_names

    state_path = _state_path(request)
    ruleset, warnings = load_ruleset_cached(request.rules, state_path.parent / "cache")
    for warning in warnings if not request.quiet else ():
        print(warning, file=sys.stderr)
    account = _account(request, ruleset, state_path.parent / "cache")
    state = _state(state_path)
    stack.callback(state.close)
    if guard is not None:
        guard(stack, state, account)
    mailbox = open_mailbox(account, request.verbose, state_path.parent)
    stack.callback(mailbox.close)
    check_folder_names(ruleset.enabled_rules, mailbox, fallbacks=False)  # before recovery changes anything
    journal = StateJournal(state, account.name, request.now)
    return Prepared(ruleset, account, state, mailbox, journal, journal.pending())


def plan_command(request: RunRequest, out: TextIO) -> int:
    """``mailrules plan`` (and ``run --dry-run``): print what a run would do; changes nothing."""
    from mailrules.render import plan_to_json, render_plan

    with ExitStack() as stack:
        prepared = prepare(request, stack)
        plan = make_plan(request, prepared)
    if request.quiet:
        return 0
    if prepared.pending:
        print(f"note: an interrupted run left {len(prepared.pending)} unfinished operation(s); "
              "`run` settles them first", file=sys.stderr)
    print(plan_to_json(plan) if request.as_json else render_plan(plan), file=out)
    return 0


def run_command(request: RunRequest, out: TextIO) -> int:
    """``mailrules run``: settle what an interrupted run left, plan again, carry the plan out."""
    from mailrules.execute import find_late_duplicates, recover

    with ExitStack() as stack:
        prepared = prepare(request, stack, guard=_hold_locks)
        mailbox, journal = prepared.mailbox, prepared.journal
        for note in recover(mailbox, journal, prepared.pending) if prepared.pending else []:
            print(f"recovered: {note}", file=sys.stderr)
        late_duplicates = find_late_duplicates(mailbox, journal)
        plan = make_plan(request, prepared)
        _check_threshold(plan, prepared.account, request.confirmed)
        return _execute(request, prepared, plan, late_duplicates, out)


def _hold_locks(stack: ExitStack, state: State, account: Account) -> None:
    stack.enter_context(_lock(state, account.name))
    note = stack.enter_context(_mailbox_lock(state, account))
    if note:
        print(f"note: {note}", file=sys.stderr)


def _execute(request: RunRequest, prepared: Prepared, plan: Plan, late_duplicates: list[str], out: TextIO) -> int:
    from mailrules.execute import execute_plan
    from mailrules.render import render_run_start
    from mailrules.signals import shielded

    if not request.as_json and not request.quiet:
        print(render_run_start(plan), file=out)
    journal = prepared.journal
    progress = TerminalProgress.if_terminal()
    try:
        with shielded():  # the run is journalled with its id, or not at all
            journal.begin(plan)
        sender = open_sender(prepared.account, _state_path(request).parent)
        report = execute_plan(plan, prepared.mailbox, journal, sender=sender, progress=progress)
    except BaseException as exc:
        with shielded():
            _record_end(journal, plan, exc, late_duplicates)
        raise
    finally:
        if progress is not None:
            progress.clear()
    report.warnings[:0] = late_duplicates
    status = "partial" if report.failures else "warning" if report.warnings else "ok"
    with shielded():
        journal.finish(status, _run_summary(plan, folders=len(report.folders), failures=report.failures,
                                            notices=report.notices, warnings=report.warnings))
    if request.quiet:
        return _print_quiet_report(report, prepared.account.name, out)
    return _print_report(report, plan, request.as_json, out)


def _record_end(journal: StateJournal, plan: Plan, exc: BaseException, warnings: list[str]) -> None:
    """Mark the run interrupted or failed in its history; a state store that fails again
    (a full disk stays full) must not hide the error that ended the run."""
    from mailrules.errors import MailrulesError, redact

    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    error = redact(str(exc)) if not isinstance(exc, KeyboardInterrupt) else "interrupted by a signal"
    try:
        journal.finish(status, _run_summary(plan, error=error, exit_code=_exit_code(exc), warnings=warnings))
    except MailrulesError:
        pass


def make_plan(request: RunRequest, prepared: Prepared) -> Plan:
    from mailrules.planner import PlanOptions, build_plan
    from mailrules.reply import Identity, SendPlanner, template_root

    ruleset, account, state = prepared.ruleset, prepared.account, prepared.state
    identity = Identity(account.name, tuple(account.addresses))
    send_planner = SendPlanner(
        identity=identity,
        rules={rule.name: rule for rule in ruleset.rules},
        base_dirs={rule.name: template_root(rule) for rule in ruleset.rules},
        now=request.now,
        last_reply=lambda rule, sender: state.last_reply(account.name, rule, sender),
    )
    options = PlanOptions(now=request.now, new_only=request.new_only, cannot_send=_cannot_send(account),
                          subaddress_separator=account.subaddress_separator)
    return build_plan(ruleset, prepared.mailbox, options, state=StateReader(state, account.name), prepare_send=send_planner)


def _cannot_send(account: Account) -> str | None:
    if account.smtp is not None:
        return None
    return f"no smtp configured for account {account.name} (replies and redirects need smtp: in accounts.yaml)"


def _print_report(report, plan: Plan, as_json: bool, out: TextIO) -> int:  # type: ignore[no-untyped-def]
    from mailrules.render import plan_to_json, render_report, report_to_json

    if as_json:
        print(json.dumps({"plan": json.loads(plan_to_json(plan)), "report": report_to_json(report)},
                         indent=2, ensure_ascii=False, default=str), file=out)
    else:
        print("", file=out)
        print(render_report(report), file=out)
    return 1 if report.failures or report.warnings else 0


def _run_summary(plan: Plan, **extra: object) -> dict[str, object]:
    """What ``history`` shows of a run beyond its operations: how many messages each rule matched."""
    return {"rules": {summary.rule: summary.matched for summary in plan.rules}, **extra}


def _exit_code(exc: BaseException) -> int:
    from mailrules.errors import MailrulesError

    if isinstance(exc, MailrulesError):
        return exc.exit_code
    return 128 + getattr(exc, "signal_number", 2) if isinstance(exc, KeyboardInterrupt) else 70


def _print_quiet_report(report, account: str, out: TextIO) -> int:  # type: ignore[no-untyped-def]
    """Cron mails whatever a job prints: a run that changed nothing prints nothing."""
    from mailrules.render import render_summary

    for failure in report.failures:
        print(f"mailrules: failed: {failure}", file=sys.stderr)
    for warning in report.warnings:
        print(f"mailrules: warning: {warning}", file=sys.stderr)
    summary = render_summary(report)
    if summary is not None:
        print(f"mailrules: {account}: {summary}", file=out)
        for notice in report.notices:
            print(f"  note: {notice}", file=out)
    return 1 if report.failures or report.warnings else 0


def _check_threshold(plan: Plan, account: Account, confirmed: bool) -> None:
    # 0 is a real setting (every trash or delete needs --yes), never "unset": the default
    # lives on Account alone.
    threshold = account.delete_threshold
    if plan.removed_count > threshold and not confirmed:
        raise NeedsConfirmation(
            f"this run would trash or delete {plan.removed_count} messages (more than {threshold}); "
            "review `mailrules plan` and run again with --yes if that is right"
        )


# ---------------------------------------------------------------- edges


def _account(request: RunRequest, ruleset: RuleSet, cache_dir: Path) -> Account:
    from mailrules.accounts import Account
    from mailrules.cache import load_accounts_cached

    if request.maildir is not None:
        path = Path(request.maildir).resolve()
        return Account(name=f"maildir:{path}", imap=None, maildir=str(path), addresses=(), smtp=None)
    named = request.account if request.account is not None else ruleset.account
    return load_accounts_cached(request.accounts_file, cache_dir).pick(named)


def _state_path(request: RunRequest) -> Path:
    from mailrules.state import default_state_path

    return Path(request.state_file) if request.state_file else default_state_path()


def _state(path: Path) -> State:
    from mailrules.state import State

    return State(path)


def _lock(state: State, account: str):  # type: ignore[no-untyped-def]
    from mailrules.lock import account_lock

    return account_lock(state.path.parent, account)


def _mailbox_lock(state: State, account: Account):  # type: ignore[no-untyped-def]
    from mailrules.lock import imap_identity, mailbox_lock, maildir_identity

    if account.maildir is not None:
        identity = maildir_identity(account.maildir)
    elif account.imap is not None:
        identity = imap_identity(account.imap.host, account.imap.port, account.imap.username)
    else:
        raise UsageError(f"account {account.name!r} has neither imap nor maildir settings")
    return mailbox_lock(identity, state.path)


def show_history(state_file: str | None, account: str | None, limit: int, out: TextIO,
                 accounts_file: str | None = None, run_id: int | None = None, as_json: bool = False) -> int:
    """``mailrules history``: recent runs with what each did per rule and folder, or one run in full."""
    from mailrules.render import render_history, run_json
    from mailrules.state import State, default_state_path

    state = State(Path(state_file) if state_file else default_state_path())
    try:
        if run_id is not None:
            return _show_run(state, run_id, account, as_json, out)
        runs = state.recent_runs(account, limit)
        if account is not None and not runs:
            _check_known_account(account, state.accounts(), accounts_file)
        history = [(run, state.run_operations(run.id)) for run in runs]
    finally:
        state.close()
    if as_json:
        print(json.dumps({"runs": [run_json(run, entries, operations=False) for run, entries in history]},
                         indent=2, ensure_ascii=False), file=out)
    else:
        print(render_history(history), file=out)
    return 0


def _show_run(state: State, run_id: int, account: str | None, as_json: bool, out: TextIO) -> int:
    from mailrules.render import render_run, run_json

    run = state.run(run_id)
    if run is None or (account is not None and run.account != account):
        raise UsageError(f"no run #{run_id}" + (f" of account {account!r}" if account else "")
                         + " in the journal; `mailrules history` lists the recent ones")
    entries = state.run_operations(run_id)
    print(json.dumps(run_json(run, entries, operations=True), indent=2, ensure_ascii=False) if as_json
          else render_run(run, entries), file=out)
    return 0


def _check_known_account(account: str, in_journal: list[str], accounts_file: str | None) -> None:
    """A name neither the journal nor the accounts file knows is a typo, not "no runs yet"."""
    from mailrules.accounts import default_accounts_path, load_accounts

    file = accounts_file or default_accounts_path()
    defined = load_accounts(file).names if accounts_file is not None or Path(file).exists() else ()
    if account in in_journal or account in defined:
        return
    known = sorted(set(in_journal) | set(defined))
    raise ConfigurationError(f"unknown account {account!r}; "
                             + (f"known accounts: {', '.join(known)}" if known else "no account has run yet"))
