"""Build a Plan by reading a mailbox: resolve folders, search, fetch what local checks need.

Read-only by construction: folders are opened with ``readonly=True`` (EXAMINE) and
messages are fetched with ``BODY.PEEK``, so planning never changes ``\\Seen``.
The server search is a pre-filter (it may return too many messages, never too few);
the exact local evaluator decides, except for rules whose search is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from mailrules.backends.base import FetchNeeds, FolderStatus, Mailbox
from mailrules.engine import EvalContext, evaluate_message
from mailrules.errors import CapabilityError
from mailrules.folders import resolve_folders
from mailrules.model import Redirect, Reply, Rule, RuleSet
from mailrules.plan import Applied, FolderPlan, FolderPlanBuilder, Plan, RuleTally, Send
from mailrules.search import SearchQuery, ascii_fallback, fetch_needs, reply_fetch_needs, to_search, volatile_flags_before

if TYPE_CHECKING:
    from mailrules.message import MessageView

# Headers every plan shows for its examples, cheap to fetch with the rest.
SUMMARY_NEEDS = FetchNeeds(headers=frozenset({"from", "subject", "date", "message-id"}))
# Below this many messages to scan, reading their headers once is cheap and exact.
LOCAL_SCAN_LIMIT = 5_000
# One header FETCH of a folder costs the server about as much as this many SEARCHes of it.
SEARCHES_PER_FETCH = 8
# Gmail's capability: its header SEARCH matches whole words, so `invoice` misses `invoices`;
# only a header's presence may narrow there.
WORD_SEARCH = "X-GM-EXT-1"

SendPreparer = Callable[[Send, "MessageView"], Send]


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


@dataclass
class _Context:
    mailbox: Mailbox
    options: PlanOptions
    state: StateView
    prepare_send: SendPreparer | None
    tally: RuleTally = field(default_factory=RuleTally)
    warnings: list[str] = field(default_factory=list)


def build_plan(
    ruleset: RuleSet,
    mailbox: Mailbox,
    options: PlanOptions,
    *,
    state: StateView | None = None,
    prepare_send: SendPreparer | None = None,
) -> Plan:
    ctx = _Context(mailbox, options, state or NoState(), prepare_send)
    existing = mailbox.list_folders()
    folder_rules = assign_folders(ruleset.enabled_rules, existing, mailbox.delimiter, ctx.warnings)
    folder_plans = tuple(_plan_folder(ctx, folder, rules) for folder, rules in folder_rules.items())
    folder_plans, create = _destinations(folder_plans, ruleset.enabled_rules, existing, ctx.warnings)
    return Plan(
        account=mailbox.label,
        now=options.now,
        new_only=options.new_only,
        folders=folder_plans,
        rules=ctx.tally.summaries(rule.name for rule in ruleset.rules),
        create_folders=create,
        warnings=tuple(ctx.warnings),
    )


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
    builder = FolderPlanBuilder(folder, ctx.state.applied(folder, status.uidvalidity))
    if min_uid >= status.uidnext or status.exists == 0:
        return _finish(builder, status, min_uid, 0)
    exact_search = getattr(ctx.mailbox, "exact_search", True)
    queries = _queries(rules, ctx.options.now, exact_search=exact_search,
                       header_strings=WORD_SEARCH not in ctx.mailbox.capabilities)
    local = not exact_search or evaluate_locally(queries, _scan_size(status, min_uid))
    candidates = _local_candidates if local else _searched_candidates
    eval_ctx = EvalContext(now=ctx.options.now)
    sends: list[Send] = []
    examined = 0
    for uid, message, verdicts in candidates(ctx, folder, rules, queries, min_uid):
        examined += 1
        outcome = evaluate_message(rules, message, folder=folder, ctx=eval_ctx, verdicts=verdicts,
                                   delimiter=ctx.mailbox.delimiter)
        ctx.warnings.extend(f"{folder} UID {uid}: {warning}" for warning in message.warnings)
        ctx.tally.add(uid, message, outcome)
        before = len(builder.sends)
        builder.add(uid, outcome)
        sends.extend(_prepare(ctx, send, message) for send in builder.sends[before:])
    return _finish(builder, status, min_uid, examined, sends)


def evaluate_locally(queries: Sequence[SearchQuery], scan_size: int) -> bool:
    """Whether to read the scanned messages' headers once and decide every rule locally.

    Local evaluation is exact (SEARCH can't see into headers a server fails to decode) and
    costs one FETCH whatever the number of rules; per-rule SEARCHes cost the server a
    pass over the folder each.  Measured on Dovecot, one header FETCH of a folder costs
    about as much as eight SEARCHes of it, so SEARCH wins only on large folders with few
    rules that push criteria down.
    """
    pushed = sum(1 for query in queries if query.keys)
    return scan_size <= LOCAL_SCAN_LIMIT or pushed >= SEARCHES_PER_FETCH


def _scan_size(status: FolderStatus, min_uid: int) -> int:
    return status.exists if min_uid <= 1 else min(status.exists, status.uidnext - min_uid)


Candidates = Iterator[tuple[int, "MessageView", dict[str, bool]]]


def _searched_candidates(ctx: _Context, folder: str, rules: Sequence[Rule], queries: Sequence[SearchQuery],
                         min_uid: int) -> Candidates:
    """One SEARCH per rule; fetch what the inexact rules check for the union of the results."""
    found = {rule.name: _search(ctx, folder, query, min_uid) for rule, query in zip(rules, queries)}
    needs = SUMMARY_NEEDS
    for rule, query in zip(rules, queries):
        needs |= rule_needs(rule) if not query.exact else _send_needs(rule)
    for uid, message in ctx.mailbox.fetch(sorted(set().union(*found.values())), needs):
        yield uid, message, _verdicts(uid, rules, queries, found)


def _local_candidates(ctx: _Context, folder: str, rules: Sequence[Rule], queries: Sequence[SearchQuery],
                      min_uid: int) -> Candidates:
    """Every scanned message's headers in one batched FETCH, every rule decided locally.

    Rules that read the body (or reply, which renders it) still narrow by SEARCH first, so
    bodies are fetched only for their candidates, in a second FETCH.
    """
    heavy = [(rule, query) for rule, query in zip(rules, queries) if rule_needs(rule).body]
    light_needs = SUMMARY_NEEDS
    for rule in rules:
        light_needs |= _header_part(rule_needs(rule))
    found = {rule.name: _search(ctx, folder, query, min_uid) for rule, query in heavy}
    deferred = set().union(*found.values())
    scanned = ctx.mailbox.search(["ALL"], min_uid=min_uid)
    not_candidates = {rule.name: False for rule, _ in heavy}
    for uid, message in ctx.mailbox.fetch([uid for uid in scanned if uid not in deferred], light_needs):
        yield uid, message, not_candidates
    heavy_needs = light_needs
    for rule, _ in heavy:
        heavy_needs |= rule_needs(rule)
    for uid, message in ctx.mailbox.fetch(sorted(deferred), heavy_needs):
        yield uid, message, {name: False for name, uids in found.items() if uid not in uids}


def rule_needs(rule: Rule) -> FetchNeeds:
    """What deciding and carrying out ``rule`` locally reads from a message."""
    return fetch_needs(rule.when) | _send_needs(rule)


def _send_needs(rule: Rule) -> FetchNeeds:
    sends = any(isinstance(action, (Reply, Redirect)) for action in rule.then)
    return reply_fetch_needs() if sends else FetchNeeds()


def _header_part(needs: FetchNeeds) -> FetchNeeds:
    return FetchNeeds(headers=needs.headers, all_headers=needs.all_headers, structure=needs.structure)


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


def _queries(rules: Sequence[Rule], now: datetime, *, exact_search: bool, header_strings: bool) -> list[SearchQuery]:
    volatile = volatile_flags_before(rules)
    queries = [to_search(rule.when, volatile_flags=flags, now=now, header_strings=header_strings)
               for rule, flags in zip(rules, volatile)]
    # A store whose search only pre-filters (Maildir) can't settle any rule by itself.
    return queries if exact_search else [replace(query, exact=False) for query in queries]


def _search(ctx: _Context, folder: str, query: SearchQuery, min_uid: int) -> frozenset[int]:
    try:
        return frozenset(ctx.mailbox.search(list(query.criteria), min_uid=min_uid))
    except CapabilityError as exc:
        ctx.warnings.append(f"{folder}: {exc}; searching without the non-ASCII criteria and checking locally")
        return frozenset(ctx.mailbox.search(list(ascii_fallback(query).criteria), min_uid=min_uid))


def _verdicts(uid: int, rules: Sequence[Rule], queries: Sequence[SearchQuery],
              candidates: dict[str, frozenset[int]]) -> dict[str, bool]:
    """Rules the server already decided for this message: absent from its search, or exact."""
    verdicts: dict[str, bool] = {}
    for rule, query in zip(rules, queries):
        if uid not in candidates[rule.name]:
            verdicts[rule.name] = False
        elif query.exact:
            verdicts[rule.name] = True
    return verdicts


def _prepare(ctx: _Context, send: Send, message: MessageView) -> Send:
    if ctx.prepare_send is None:
        return send
    return ctx.prepare_send(send, message)


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
