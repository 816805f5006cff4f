"""``plan`` and ``run``: the edges (accounts, lock, state, mailbox, SMTP) around the pure core.

Both commands go through ``prepare``; the only difference is what happens to the Plan
value at the end — rendered, or rendered and executed (alembic's offline/online split
without a mode flag further down).
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mailrules.errors import ConfigurationError, NeedsConfirmation, UsageError
from mailrules.backends.open import open_mailbox, open_sender
from mailrules.terminal import TerminalProgress

if TYPE_CHECKING:
    from mailrules.accounts import Account
    from mailrules.backends.base import Mailbox
    from mailrules.model import RuleSet
    from mailrules.plan import Plan
    from mailrules.state import State

# The journal's mark for a message this account flagged \Deleted but could not expunge.
LEFT_FLAGGED = "left-flagged"


@dataclass(frozen=True, slots=True)
class RunRequest:
    rules: str
    account: str | None
    maildir: str | None
    accounts_file: str | None
    state_file: str | None
    now: datetime
    new_only: bool
    dry_run: bool
    confirmed: bool
    as_json: bool
    verbose: int = 0
    quiet: bool = False  # cron: errors only, and one summary line when a run changed something


def run_request(request: RunRequest, out: TextIO) -> int:
    from mailrules.cache import load_ruleset_cached

    state_path = _state_path(request)
    ruleset, warnings = load_ruleset_cached(request.rules, state_path.parent / "cache")
    for warning in warnings if not request.quiet else ():
        print(warning, file=sys.stderr)
    account = _account(request, ruleset, state_path.parent / "cache")
    with ExitStack() as stack:
        state = _state(state_path)
        stack.callback(state.close)
        if not request.dry_run:
            stack.enter_context(_lock(state, account.name))
            note = stack.enter_context(_mailbox_lock(state, account))
            if note:
                print(f"note: {note}", file=sys.stderr)
        mailbox = open_mailbox(account, request.verbose, state_path.parent)
        stack.callback(mailbox.close)
        return _plan_and_maybe_run(request, ruleset, account, mailbox, state, out)


def _plan_and_maybe_run(request: RunRequest, ruleset: RuleSet, account: Account, mailbox: Mailbox,
                        state: State, out: TextIO) -> int:
    from mailrules.render import plan_to_json, render_plan

    from mailrules.planner import check_folder_names

    check_folder_names(ruleset.enabled_rules, mailbox, fallbacks=False)  # before recovery changes anything
    journal = StateJournal(state, account.name, request.now)
    pending = journal.pending()
    late_duplicates: list[str] = []
    if not request.dry_run:
        from mailrules.execute import find_late_duplicates, recover

        for note in recover(mailbox, journal, pending) if pending else []:
            print(f"recovered: {note}", file=sys.stderr)
        late_duplicates = find_late_duplicates(mailbox, journal)
    plan = make_plan(request, ruleset, account, mailbox, state)
    if request.dry_run:
        if request.quiet:
            return 0
        if pending:
            print(f"note: an interrupted run left {len(pending)} unfinished operation(s); `run` settles them first",
                  file=sys.stderr)
        print(plan_to_json(plan) if request.as_json else render_plan(plan), file=out)
        return 0
    _check_threshold(plan, account, request.confirmed)
    if not request.as_json and not request.quiet:
        print(render_plan(plan, running=True), file=out)
    from mailrules.execute import execute_plan

    from mailrules.signals import shielded

    progress = TerminalProgress.if_terminal()
    try:
        with shielded():  # the run is journalled with its id, or not at all
            journal.begin(plan)
        sender = open_sender(account, _state_path(request).parent)
        report = execute_plan(plan, mailbox, journal, sender=sender, progress=progress)
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
        return _print_quiet_report(report, account.name, out)
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


def make_plan(request: RunRequest, ruleset: RuleSet, account: Account, mailbox: Mailbox, state: State) -> Plan:
    from mailrules.planner import PlanOptions, build_plan
    from mailrules.reply import Identity, SendPlanner, template_root

    identity = Identity(account.name, tuple(account.addresses))
    send_planner = SendPlanner(
        identity=identity,
        rules={rule.name: rule for rule in ruleset.rules},
        base_dirs={rule.name: template_root(rule) for rule in ruleset.rules},
        now=request.now,
        last_reply=lambda rule, sender: state.last_reply(account.name, rule, sender),
    )
    options = PlanOptions(now=request.now, new_only=request.new_only, cannot_send=_cannot_send(account))
    return build_plan(ruleset, mailbox, options, state=StateReader(state, account.name), prepare_send=send_planner)


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


# ---------------------------------------------------------------- state adapters


class StateReader:
    """The planner's read-only view of the state database for one account."""

    def __init__(self, state: State, account: str):
        self.state, self.account = state, account

    def folder_state(self, folder: str) -> tuple[int, int] | None:
        return self.state.folder_state(self.account, folder)

    def applied(self, folder: str, uidvalidity: int):  # type: ignore[no-untyped-def]
        from mailrules.plan import Applied

        rows = self.state.already_applied(self.account, folder, uidvalidity)
        copies = frozenset((row.uid, row.target) for row in rows if row.kind == "copy")
        sends = frozenset((row.uid, row.kind, row.rule or "") for row in rows if row.kind in ("reply", "redirect"))
        left = frozenset(row.uid for row in rows if row.kind == LEFT_FLAGGED)
        return Applied(copies=copies, sends=sends, left_flagged=left)


class StateJournal:
    """The executor's journal, written to the state database as the run goes."""

    def __init__(self, state: State, account: str, now: datetime):
        self.state, self.account, self.now = state, account, now
        self.run_id: int | None = None

    def begin(self, plan: Plan) -> None:
        self.run_id = self.state.begin_run(self.account, "run-new" if plan.new_only else "run")

    def finish(self, status: str, summary: dict[str, object]) -> None:
        if self.run_id is not None:
            self.state.finish_run(self.run_id, status, summary)

    def pending(self):  # type: ignore[no-untyped-def]
        from mailrules.execute import PendingOperation

        from mailrules.execute import Operation, journal_prints

        pending = []
        for intent in self.state.pending_intents(self.account):
            fields = {name: intent.details.get(name) for name in Operation.__dataclass_fields__}
            fields.update(uids=intent.uids, flags=tuple(fields["flags"] or ()),
                          fingerprints=journal_prints(fields["fingerprints"]))
            pending.append(PendingOperation(intent.id, Operation(**fields)))
        return pending

    def intent(self, op) -> int:  # type: ignore[no-untyped-def]
        return self.state.record_intent(self.run_id or 0, self.account, op)

    def done(self, op_id: int, result: dict[str, object]) -> None:
        self.state.mark_done(op_id, result)

    def failed(self, op_id: int, error: str) -> None:
        from mailrules.errors import redact

        self.state.mark_failed(op_id, redact(error))

    def record_copies(self, folder: str, uidvalidity: int, pairs) -> None:  # type: ignore[no-untyped-def]
        self.state.record_applied(self.account, folder, uidvalidity,
                                  [(uid, None, "copy", dest) for uid, dest in pairs])

    def record_send(self, folder: str, uidvalidity: int, send) -> None:  # type: ignore[no-untyped-def]
        self.state.record_applied(self.account, folder, uidvalidity, [(send.uid, send.rule, send.kind, send.recipient)])
        if send.kind == "reply" and send.sender_key:
            self.state.record_reply(self.account, send.rule, send.sender_key, self.now)

    def folder_seen(self, folder: str, uidvalidity: int, highest_uid: int) -> None:
        self.state.set_folder_state(self.account, folder, uidvalidity, highest_uid)

    def record_left_flagged(self, folder: str, uidvalidity: int, uids) -> None:  # type: ignore[no-untyped-def]
        self.state.record_applied(self.account, folder, uidvalidity, [(uid, None, LEFT_FLAGGED, None) for uid in uids])

    def dest_floor(self, folder: str) -> tuple[int, int] | None:
        return self.state.dest_floor(self.account, folder)

    def raise_dest_floor(self, folder: str, uidvalidity: int, uid_floor: int) -> None:
        self.state.raise_dest_floor(self.account, folder, uidvalidity, uid_floor)

    def watch_duplicates(self, op_id: int, destination: str, uidvalidity: int, uid_floor: int) -> None:
        self.state.watch_duplicates(self.account, op_id, destination, uidvalidity, uid_floor)

    def duplicate_watches(self):  # type: ignore[no-untyped-def]
        from mailrules.execute import DuplicateWatch

        return [DuplicateWatch(*row) for row in self.state.duplicate_watches(self.account)]

    def watched_prints(self, op_id: int):  # type: ignore[no-untyped-def]
        return self.state.transfer_prints(op_id)

    def retire_watch(self, op_id: int) -> None:
        self.state.retire_watch(op_id)
