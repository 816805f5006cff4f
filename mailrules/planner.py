"""Build a Plan by reading a mailbox: resolve folders, read what is new, group the outcomes.

Read-only by construction: folders are opened with ``readonly=True`` (EXAMINE) and
messages are fetched with ``BODY.PEEK``, so planning never changes ``\\Seen``.  How a
folder's messages are searched and evaluated is scan.py's business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from mailrules.backends.base import FolderStatus, Mailbox
from mailrules.errors import FolderRefused, Loc, Problem
from mailrules.engine import outside_window, rule_active
from mailrules.folders import resolve_folders, resolve_special_use
from mailrules.model import Action, Copy, Move, Reply, Rule, RuleSet, Trash
from mailrules.plan import Applied, FolderPlan, FolderPlanBuilder, Plan, RuleTally, Send

if TYPE_CHECKING:
    from mailrules.scan import ScanContext, SendPreparer

# The usual name of the sent folder: a reply saved there goes to the server's \Sent folder.
SENT_FOLDER = "Sent"

class StateView(Protocol):
    """What the planner reads from the state database (see state.py); never writes."""

    def folder_state(self, folder: str) -> tuple[int, int] | None: ...  # (uidvalidity, highest uid seen)

    def applied(self, folder: str, uidvalidity: int) -> Applied: ...


class NoState:
    """A state view for one-off plans (``explain``-like use, tests, the bundled Maildir)."""

    def folder_state(self, folder: str) -> tuple[int, int] | None:
        return None

    def applied(self, folder: str, uidvalidity: int) -> Applied:
        return Applied()


@dataclass(frozen=True, slots=True)
class PlanOptions:
    now: datetime
    new_only: bool = False
    cannot_send: str | None = None  # why this account can't send replies or redirects (no SMTP)
    subaddress_separator: str = "+"  # the account's, for the user/detail address operators


@dataclass
class _Context:
    mailbox: Mailbox
    options: PlanOptions
    state: StateView
    prepare_send: SendPreparer | None
    tally: RuleTally = field(default_factory=RuleTally)
    warnings: list[str] = field(default_factory=list)
    # Keywords that copies and moves take into each destination, for stores with a limit.
    carried: dict[str, set[str]] | None = None


def build_plan(
    ruleset: RuleSet,
    mailbox: Mailbox,
    options: PlanOptions,
    *,
    state: StateView | None = None,
    prepare_send: SendPreparer | None = None,
) -> Plan:
    ctx = _Context(mailbox, options, state or NoState(), prepare_send)
    if mailbox.features.keyword_slots is not None:
        ctx.carried = {}
    existing = mailbox.list_folders()
    enabled = resolve_rule_folders(ruleset.enabled_rules, mailbox)
    ctx.warnings.extend(outside_window(enabled, options.now))
    enabled = tuple(rule for rule in enabled if rule_active(rule, options.now))
    ctx.warnings.extend(f"folder {name!r} can't be named in a rule file ('/' is the level separator there); "
                        "no rule reads it" for name in mailbox.unnamed_folders)
    folder_rules = assign_folders(enabled, existing, mailbox.delimiter, ctx.warnings)
    folder_plans = tuple(_plan_folder(ctx, folder, rules) for folder, rules in folder_rules.items())
    folder_plans, create = _destinations(folder_plans, enabled, existing, ctx.warnings)
    _warn_about_unstorable_carried_keywords(ctx)
    return Plan(
        account=mailbox.label,
        now=options.now,
        new_only=options.new_only,
        folders=folder_plans,
        rules=ctx.tally.summaries(rule.name for rule in ruleset.rules),
        create_folders=create,
        warnings=tuple(ctx.warnings),
        expunges_by_uid=mailbox.features.expunges_by_uid,
        moves_in_one_step=mailbox.features.supports_move,
    )


# ---------------------------------------------------------------- folder names


def resolve_rule_folders(rules: Sequence[Rule], mailbox: Mailbox) -> tuple[Rule, ...]:
    """The rules with every folder spelled the one way this mailbox names it.

    Special uses (RFC 6154) become the folders the server gives them: a bare ``trash``
    goes to the server's ``\\Trash`` folder, ``save_to: Sent`` to its ``\\Sent`` one, and a
    folder written ``\\Junk`` (``\\Trash``, ``\\Sent``, ``\\Drafts``, ``\\Archive``) to that
    use's folder; the configured or usual name is the fallback.  A name that can't exist
    on this server (a ``.`` inside a level where ``.`` separates levels) is refused with
    its place in the rule file, before anything is read or changed.
    """
    uses = mailbox.special_use_folders()
    rules = tuple(_respelled(rule, lambda name: resolve_special_use(name, uses), uses) for rule in rules)
    check_folder_names(rules, mailbox)
    return tuple(_respelled(rule, mailbox.canonical_folder) for rule in rules)


def check_folder_names(rules: Sequence[Rule], mailbox: Mailbox, *, fallbacks: bool = True) -> None:
    """Raise FolderRefused naming every folder of the rules this mailbox can't hold.

    Without ``fallbacks``, a bare trash's folder is not checked: the server's own trash
    folder may make it unused, which is known only once special uses are resolved.
    """
    problems: dict[Problem, None] = {}
    for rule in rules:
        for name, loc in _named_folders(rule, fallbacks):
            reason = mailbox.folder_problem(name)
            if reason is not None:
                problems[Problem(loc, f"rule {rule.name!r}: {reason}")] = None
    if problems:
        lines = "\n".join(str(problem) for problem in sorted(problems, key=lambda p: (p.loc, p.message)))
        raise FolderRefused(f"{mailbox.label} can't hold folders the rules name; nothing was changed:\n{lines}")


def _named_folders(rule: Rule, fallbacks: bool = True) -> Iterator[tuple[str, Loc]]:
    locs = rule.folder_locs if len(rule.folder_locs) == len(rule.folders) else (rule.loc,) * len(rule.folders)
    yield from zip(rule.folders, locs)
    for action in rule.then:
        if isinstance(action, Trash) and action.use is not None and not fallbacks:
            continue
        if isinstance(action, (Move, Copy, Trash)):
            yield action.folder, action.loc
        elif isinstance(action, Reply) and action.save_to:
            yield action.save_to, action.loc


def _respelled(rule: Rule, spell: Callable[[str], str], uses: dict[str, str] | None = None) -> Rule:
    """``rule`` with every folder name passed through ``spell``; with ``uses``, also the
    actions whose folder is a special use by default (bare ``trash``, ``save_to: Sent``)."""
    then = tuple(_respelled_action(action, spell, uses) for action in rule.then)
    return replace(rule, folders=tuple(spell(name) for name in rule.folders), then=then)


def _respelled_action(action: Action, spell: Callable[[str], str], uses: dict[str, str] | None) -> Action:
    if isinstance(action, Trash) and action.use is not None and uses is not None and action.use in uses:
        return replace(action, folder=uses[action.use], use=None)  # resolved: no fallback left
    if isinstance(action, (Move, Copy, Trash)):
        return replace(action, folder=spell(action.folder))
    if isinstance(action, Reply) and action.save_to:
        if uses is not None and action.save_to == SENT_FOLDER and "\\Sent" in uses:
            return replace(action, save_to=uses["\\Sent"])
        return replace(action, save_to=spell(action.save_to))
    return action


def assign_folders(rules: Sequence[Rule], existing: Sequence[str], delimiter: str,
                   warnings: list[str]) -> dict[str, list[Rule]]:
    """Map each existing folder to the rules that run on it, in rule order."""
    folder_rules: dict[str, list[Rule]] = {}
    for rule in rules:
        matched, unmatched = resolve_folders(rule.folders, existing, delimiter)
        for pattern in unmatched:
            warnings.append(f"rule {rule.name!r}: no folder matches {pattern!r}; skipped there")
        for folder in matched:
            folder_rules.setdefault(folder, []).append(rule)
    return folder_rules


def _plan_folder(ctx: _Context, folder: str, rules: list[Rule]) -> FolderPlan:
    status = ctx.mailbox.open_folder(folder, readonly=True)
    min_uid = _first_uid_to_scan(ctx, status)
    builder = FolderPlanBuilder(folder, ctx.state.applied(folder, status.uidvalidity),
                                holds_copy=ctx.mailbox.holds_copy)
    if min_uid >= status.uidnext or status.exists == 0:
        return _finish(builder, status, min_uid, 0)
    # Only a folder with something to read needs the evaluator; a cron run mostly has none.
    from mailrules.scan import scan_folder

    examined, sends = scan_folder(_scan_context(ctx), builder, rules, min_uid,
                                  _scan_size(status, min_uid))
    _leave_out_unstorable_flags(ctx.mailbox, builder)
    return _finish(builder, status, min_uid, examined, sends)


def _scan_context(ctx: _Context) -> ScanContext:
    from mailrules.scan import ScanContext

    return ScanContext(mailbox=ctx.mailbox, now=ctx.options.now, cannot_send=ctx.options.cannot_send,
                prepare_send=ctx.prepare_send, tally=ctx.tally, warnings=ctx.warnings, carried=ctx.carried,
                subaddress_separator=ctx.options.subaddress_separator)


def _warn_about_unstorable_carried_keywords(ctx: _Context) -> None:
    for destination, keywords in sorted((ctx.carried or {}).items()):
        refused = ctx.mailbox.unstorable_flags(destination, keywords)
        if refused:
            ctx.warnings.append(f"{destination}: no keyword letter left for {', '.join(sorted(refused))} "
                                f"({next(iter(refused.values()))}); messages copied or moved there arrive "
                                "without them")


def _leave_out_unstorable_flags(mailbox: Mailbox, builder: FolderPlanBuilder) -> None:
    """Plan only the flags the store can hold, so ``run`` does what ``plan`` showed (a Maildir
    folder has 26 keyword letters)."""
    if mailbox.features.keyword_slots is None or not builder.adds:
        return
    refused = mailbox.unstorable_flags(builder.folder, set().union(*builder.adds))
    if refused:
        builder.without_flags(refused)


def _scan_size(status: FolderStatus, min_uid: int) -> int:
    return status.exists if min_uid <= 1 else min(status.exists, status.uidnext - min_uid)


def _finish(builder: FolderPlanBuilder, status: FolderStatus, min_uid: int, candidates: int,
            sends: list[Send] | None = None) -> FolderPlan:
    return builder.build(uidvalidity=status.uidvalidity, uidnext=status.uidnext, messages=status.exists,
                         scanned_from_uid=min_uid, candidates=candidates, sends=sends)


def _first_uid_to_scan(ctx: _Context, status: FolderStatus) -> int:
    if not ctx.options.new_only:
        return 1
    known = ctx.state.folder_state(status.name)
    if known is None or known[0] != status.uidvalidity:
        return 1  # never seen, or the folder was recreated: everything is new
    return known[1] + 1


# ---------------------------------------------------------------- destinations


def _destinations(folder_plans: tuple[FolderPlan, ...], rules: Sequence[Rule], existing: Iterable[str],
                  warnings: list[str]) -> tuple[tuple[FolderPlan, ...], tuple[str, ...]]:
    """Folders to create before running, and transfers dropped because their folder can't be."""
    known = {_folder_key(name) for name in existing}
    creatable = _creatable_destinations(rules)
    wanted = [t.destination for plan in folder_plans for t in plan.copies + plan.moves]
    wanted += [send.reply.save_to for plan in folder_plans for send in plan.pending_sends
               if send.reply is not None and send.reply.save_to]
    missing = [dest for dest in dict.fromkeys(wanted) if _folder_key(dest) not in known]
    create = tuple(dest for dest in missing if creatable.get(dest, False))
    refused = {dest for dest in missing if dest not in create}
    for dest in sorted(refused):
        warnings.append(f"destination folder {dest!r} does not exist and create_folders is false; "
                        "its messages stay where they are")
    if refused:
        folder_plans = tuple(_without_destinations(plan, refused) for plan in folder_plans)
    return folder_plans, create


def _creatable_destinations(rules: Sequence[Rule]) -> dict[str, bool]:
    creatable: dict[str, bool] = {}
    for rule in rules:
        for action in rule.then:
            folder = action.save_to if isinstance(action, Reply) else getattr(action, "folder", None)
            if folder:
                creatable[folder] = creatable.get(folder, False) or rule.create_folders
    return creatable


def _without_destinations(plan: FolderPlan, refused: set[str]) -> FolderPlan:
    return replace(
        plan,
        copies=tuple(t for t in plan.copies if t.destination not in refused),
        moves=tuple(t for t in plan.moves if t.destination not in refused),
    )


def _folder_key(name: str) -> str:
    # INBOX is case-insensitive in IMAP (RFC 3501 §5.1); every other name is exact.
    return "INBOX" if name.upper() == "INBOX" else name
