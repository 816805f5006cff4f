"""Deciding the rules for the messages of one folder: which to read, how, and what happens to each.

The server search is a pre-filter (it may return too many messages, never too few); the
exact local evaluator decides, except for rules whose search is exact.  Imported by the
planner only for folders with something to read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from mailrules.backends.base import FetchNeeds, Mailbox
from mailrules.engine import EvalContext, MessageOutcome, evaluate_message
from mailrules.errors import CapabilityError
from mailrules.model import All, Condition, FlagTest, Not, Redirect, Reply, Rule
from mailrules.model import Any as AnyOf
from mailrules.plan import FolderPlanBuilder, RuleTally, Send
from mailrules.query import EVERYTHING
from mailrules.search import SearchQuery, ascii_fallback, fetch_needs, reply_fetch_needs, to_search, volatile_flags_before

if TYPE_CHECKING:
    from mailrules.message import MessageView

# Headers every plan shows for its examples, cheap to fetch with the rest.
SUMMARY_NEEDS = FetchNeeds(headers=frozenset({"from", "subject", "date", "message-id"}))
# Below this many messages to scan, reading their headers once is cheap and exact.
LOCAL_SCAN_LIMIT = 5_000
# One header FETCH of a folder costs the server about as much as this many SEARCHes of it.
SEARCHES_PER_FETCH = 8

SendPreparer = Callable[[Send, "MessageView"], Send]


@dataclass(frozen=True, slots=True)
class ScanContext:
    """What scanning a folder reads, and where it reports.

    The tally, warnings and carried keywords are the plan's own collections: every folder
    of one plan adds to them, so the plan counts and warns once for the whole account.
    """

    mailbox: Mailbox
    now: datetime
    cannot_send: str | None
    prepare_send: SendPreparer | None
    tally: RuleTally
    warnings: list[str]
    # Keywords that copies and moves take into each destination, for stores with a limit.
    carried: dict[str, set[str]] | None
    subaddress_separator: str = "+"  # the account's, for the user/detail address operators


def scan_folder(ctx: ScanContext, builder: FolderPlanBuilder, rules: list[Rule], min_uid: int,
                scan_size: int) -> tuple[int, list[Send]]:
    """Evaluate the rules on the folder's messages from ``min_uid`` on, into ``builder``.

    Returns how many messages were examined and the sends, prepared for the plan.
    """
    folder = builder.folder
    features = ctx.mailbox.features
    exact_search = features.exact_search
    # A whole-word header search (Gmail) would miss `invoices` for `invoice`: only a
    # header's presence may narrow there.
    queries = _queries(rules, ctx.now, exact_search=exact_search, header_strings=not features.whole_word_search)
    local = not exact_search or evaluate_locally(queries, scan_size)
    candidates = _local_candidates if local else _searched_candidates
    eval_ctx = EvalContext(now=ctx.now, subaddress_separator=ctx.subaddress_separator)
    sends: list[Send] = []
    examined = 0
    deleted_rules = [rule for rule in rules if asks_about_deleted(rule.when)]
    for uid, message, verdicts in candidates(ctx, folder, rules, queries, min_uid):
        deciding = _deciding_rules(builder, uid, message, rules, deleted_rules)
        if not deciding:
            continue
        examined += 1
        outcome = evaluate_message(deciding, message, folder=folder, ctx=eval_ctx, verdicts=verdicts,
                                   delimiter=ctx.mailbox.delimiter)
        ctx.warnings.extend(f"{folder} UID {uid}: {warning}" for warning in message.warnings)
        ctx.tally.add(uid, message, outcome)
        before = len(builder.sends)
        builder.add(uid, outcome)
        if ctx.carried is not None:
            _note_carried_keywords(ctx.carried, folder, outcome)
        sends.extend(_prepare(ctx, send, message) for send in builder.sends[before:])
    return examined, sends


def _note_carried_keywords(carried: dict[str, set[str]], folder: str, outcome: MessageOutcome) -> None:
    keywords = {flag for flag in outcome.final_flags if not flag.startswith("\\")}
    for destination in outcome.final_folders:
        if keywords and destination != folder:
            carried.setdefault(destination, set()).update(keywords)


def _deciding_rules(builder: FolderPlanBuilder, uid: int, message: MessageView, rules: list[Rule],
                    deleted_rules: list[Rule]) -> list[Rule]:
    """The rules that may act on this message.

    A message this account already moved or deleted on a server that could not expunge it
    is done with: acting on it again would copy it a second time.  Any other message
    flagged ``\\Deleted`` is on its way out, and mail clients hide it: only rules that ask
    about the ``deleted`` flag see it.
    """
    if uid in builder.applied.left_flagged:
        return []
    if any(flag.lower() == "\\deleted" for flag in message.flags):
        return deleted_rules
    return rules


def asks_about_deleted(condition: Condition) -> bool:
    """Whether a condition tests the ``\\Deleted`` flag anywhere inside it."""
    if isinstance(condition, FlagTest):
        return condition.flag.lower() == "\\deleted"
    if isinstance(condition, (All, AnyOf)):
        return any(asks_about_deleted(child) for child in condition.children)
    if isinstance(condition, Not):
        return asks_about_deleted(condition.child)
    return False


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


Candidates = Iterator[tuple[int, "MessageView", dict[str, bool]]]


def _searched_candidates(ctx: ScanContext, folder: str, rules: Sequence[Rule], queries: Sequence[SearchQuery],
                         min_uid: int) -> Candidates:
    """One SEARCH per rule; fetch what the inexact rules check for the union of the results."""
    found = {rule.name: _search(ctx, folder, query, min_uid) for rule, query in zip(rules, queries)}
    needs = SUMMARY_NEEDS
    for rule, query in zip(rules, queries):
        needs |= rule_needs(rule) if not query.exact else _send_needs(rule)
    for uid, message in ctx.mailbox.fetch(sorted(set().union(*found.values())), needs):
        yield uid, message, _verdicts(uid, rules, queries, found)


def _local_candidates(ctx: ScanContext, folder: str, rules: Sequence[Rule], queries: Sequence[SearchQuery],
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
    scanned = ctx.mailbox.search(EVERYTHING, min_uid=min_uid)
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


def _queries(rules: Sequence[Rule], now: datetime, *, exact_search: bool, header_strings: bool) -> list[SearchQuery]:
    volatile = volatile_flags_before(rules)
    queries = [to_search(rule.when, volatile_flags=flags, now=now, header_strings=header_strings)
               for rule, flags in zip(rules, volatile)]
    # A store whose search only pre-filters (Maildir) can't settle any rule by itself.
    return queries if exact_search else [replace(query, exact=False) for query in queries]


def _search(ctx: ScanContext, folder: str, query: SearchQuery, min_uid: int) -> frozenset[int]:
    try:
        return frozenset(ctx.mailbox.search(query, min_uid=min_uid))
    except CapabilityError as exc:
        ctx.warnings.append(f"{folder}: {exc}; searching without the non-ASCII criteria and checking locally")
        return frozenset(ctx.mailbox.search(ascii_fallback(query), min_uid=min_uid))


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


def _prepare(ctx: ScanContext, send: Send, message: MessageView) -> Send:
    prepared = send if ctx.prepare_send is None else ctx.prepare_send(send, message)
    cannot_send = ctx.cannot_send
    if cannot_send is None or not _would_send(prepared):
        return prepared
    # Said in the plan, so run skips it too instead of failing it (and holding the message);
    # the rendered text stays, for review.
    return replace(prepared, skip_reason=cannot_send, payload=None)


def _would_send(send: Send) -> bool:
    """Whether a send is skipped for no other reason than that the account can't send at all.

    Nothing is sent in such a plan, so "already answered in this run" can only mean an
    earlier reply that would have gone.
    """
    return send.skip_reason is None or send.skip_reason.endswith("is already answered in this run")
