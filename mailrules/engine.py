"""What the rules do to one message: which rules match, in order, and where the message ends up.

Rules run in file order on the folders their globs name.  Every matching rule adds its
actions; a rule with a terminal action (move, trash, delete, stop) ends the processing of
the message.  Flags a rule changes are visible to the flag tests of later rules.

Where the spec is silent this follows Sieve (RFC 5228 §2.10.3): a message is never filed
twice into one folder, so a copy into the folder the message stays in or moves to, or a
second copy into the same folder, is dropped; a second redirect to the same address is
dropped too.  A move into the folder the message is already in keeps it (and still ends
processing).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

from mailrules import model
from mailrules.folders import folder_matches, same_folder
from mailrules.match import EvalContext, RegexTimeout, Trace, explain as explain_condition, matches, zone_of
from mailrules.message import MessageView
from mailrules.model import Condition, Reply, Rule, canonical_flag, flag_key

TerminalKind = Literal["move", "trash", "delete"]
Terminal = tuple[TerminalKind, str | None, str]  # (kind, destination folder or None for delete, rule name)


@dataclass(frozen=True, slots=True)
class MessageOutcome:
    """The result of the rules for one message, in the order the executor applies it.

    Execution order (§3): the net flag changes, then ``copies``, then ``replies`` and
    ``redirects``, then the single ``terminal`` move/trash/delete.  ``final_folders`` and
    ``final_flags`` say where the message ends up and with which flags; ``[]``/``[]`` when
    it is deleted and was not copied.  A copy carries the flags of the final message,
    since every flag change runs before the copies.
    """

    folder: str
    matched: tuple[str, ...]
    flag_adds: tuple[str, ...]
    flag_removes: tuple[str, ...]
    copies: tuple[tuple[str, str], ...]  # (rule name, folder)
    replies: tuple[tuple[str, Reply], ...]  # (rule name, reply)
    redirects: tuple[tuple[str, str], ...]  # (rule name, address)
    terminal: Terminal | None
    stopped_by: str | None  # the rule whose terminal action ended processing (stop and no-op moves too)
    final_folders: tuple[str, ...]
    final_flags: tuple[str, ...]
    traces: tuple[tuple[str, Trace], ...] = ()  # (rule name, trace) per rule evaluated, with explain=True

    @property
    def deleted(self) -> bool:
        return self.terminal is not None and self.terminal[0] == "delete"

    @property
    def changes_anything(self) -> bool:
        changes = (self.flag_adds, self.flag_removes, self.copies, self.replies, self.redirects, self.terminal)
        return any(changes)

    def to_json(self) -> dict[str, object]:
        """The ``outcome`` object of ``explain --json`` (§6)."""
        return {
            "folders": list(self.final_folders),
            "flags": list(self.final_flags),
            "replies": len(self.replies),
            "redirects": [address for _, address in self.redirects],
        }


@dataclass(slots=True)
class _Run:
    """The state of one message while the rules run over it (private, never escapes)."""

    flags: dict[str, str]  # flag key -> canonical spelling
    matched: list[str] = field(default_factory=list)
    copies: list[tuple[str, str]] = field(default_factory=list)
    replies: list[tuple[str, Reply]] = field(default_factory=list)
    redirects: list[tuple[str, str]] = field(default_factory=list)
    terminal: Terminal | None = None
    stopped_by: str | None = None
    traces: list[tuple[str, Trace]] = field(default_factory=list)


def rule_applies(rule: Rule, folder: str, delimiter: str | None) -> bool:
    """An enabled rule whose folder globs cover ``folder``."""
    return rule.enabled and _globs_cover(rule.folders, folder, delimiter)


@functools.lru_cache(maxsize=4096)
def _globs_cover(patterns: tuple[str, ...], folder: str, delimiter: str | None) -> bool:
    # Asked for every message and rule of a folder: the answer never changes within it.
    return any(folder_matches(pattern, folder, delimiter) for pattern in patterns)


def uses_flags(cond: Condition) -> bool:
    """Whether a condition tests flags, so its verdict may change when earlier rules change flags."""
    if isinstance(cond, (model.All, model.Any)):
        return any(uses_flags(child) for child in cond.children)
    if isinstance(cond, model.Not):
        return uses_flags(cond.child)
    return isinstance(cond, model.FlagTest)


def _flag_map(flags: Iterable[str]) -> dict[str, str]:
    return {flag_key(flag): canonical_flag(flag) for flag in flags}


def _decide(
    rule: Rule, view: MessageView, ctx: EvalContext, verdict: bool | None, want_trace: bool
) -> tuple[bool, Trace | None]:
    if verdict is not None:
        trace = Trace(rule.when, verdict, "decided by the server's search") if want_trace else None
        return verdict, trace
    try:
        if want_trace:
            trace = explain_condition(rule.when, view, ctx)
            return trace.result, trace
        return matches(rule.when, view, ctx), None
    except RegexTimeout as exc:
        # Neither "matches" nor "doesn't": under `not:` a guess could delete mail. Skip the rule.
        view.warnings.append(f"rule {rule.name!r} skipped: {exc}")
        return False, Trace(rule.when, False, f"skipped: {exc}") if want_trace else None


def _verdict(rule: Rule, verdicts: Mapping[str, bool] | None, flags_changed: bool) -> bool | None:
    """The server's verdict, unless earlier rules changed flags that this rule tests."""
    if verdicts is None or rule.name not in verdicts:
        return None
    if flags_changed and uses_flags(rule.when):
        return None
    return verdicts[rule.name]


def _terminal_of(action: model.Action, rule: Rule, folder: str, delimiter: str | None) -> Terminal | None:
    if isinstance(action, model.Delete):
        return ("delete", None, rule.name)
    if isinstance(action, (model.Move, model.Trash)):
        if same_folder(action.folder, folder, delimiter):
            return None  # moving a message where it already is keeps it
        return ("move" if isinstance(action, model.Move) else "trash", action.folder, rule.name)
    return None


def _apply_flags(run: _Run, rule: Rule) -> None:
    for action in rule.then:
        if isinstance(action, model.AddFlags):
            for flag in action.flags:
                run.flags.setdefault(flag_key(flag), canonical_flag(flag))
        elif isinstance(action, model.RemoveFlags):
            for flag in action.flags:
                run.flags.pop(flag_key(flag), None)


def _apply_rule(run: _Run, rule: Rule, folder: str, delimiter: str | None) -> None:
    """Add a matching rule's actions to the run, in the order of §3."""
    run.matched.append(rule.name)
    _apply_flags(run, rule)
    run.copies.extend((rule.name, action.folder) for action in rule.then if isinstance(action, model.Copy))
    run.replies.extend((rule.name, action) for action in rule.then if isinstance(action, model.Reply))
    run.redirects.extend((rule.name, action.address) for action in rule.then if isinstance(action, model.Redirect))
    if rule.terminal:
        run.stopped_by = rule.name
        terminals = (_terminal_of(action, rule, folder, delimiter) for action in rule.then)
        run.terminal = next((terminal for terminal in terminals if terminal), None)


def _resting_folder(terminal: Terminal | None, folder: str) -> str | None:
    """Where the original message is at the end: kept, moved, or nowhere once deleted."""
    if terminal is None:
        return folder
    return terminal[1]


def _distinct_copies(
    copies: list[tuple[str, str]], resting: str | None, delimiter: str | None
) -> tuple[tuple[str, str], ...]:
    """Copies into folders the message is not already filed into (Sieve files a message once per folder)."""
    filed = [resting] if resting is not None else []
    kept: list[tuple[str, str]] = []
    for rule_name, target in copies:
        if not any(same_folder(target, other, delimiter) for other in filed):
            kept.append((rule_name, target))
            filed.append(target)
    return tuple(kept)


def _distinct_redirects(redirects: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    seen: set[str] = set()
    kept = []
    for rule_name, address in redirects:
        if address.casefold() not in seen:
            seen.add(address.casefold())
            kept.append((rule_name, address))
    return tuple(kept)


def _outcome(run: _Run, msg: MessageView, folder: str, delimiter: str | None) -> MessageOutcome:
    original = _flag_map(msg.flags)
    resting = _resting_folder(run.terminal, folder)
    copies = _distinct_copies(run.copies, resting, delimiter)
    final_folders = ((resting,) if resting is not None else ()) + tuple(target for _, target in copies)
    return MessageOutcome(
        folder=folder,
        matched=tuple(run.matched),
        flag_adds=tuple(sorted(run.flags[key] for key in run.flags.keys() - original.keys())),
        flag_removes=tuple(sorted(original[key] for key in original.keys() - run.flags.keys())),
        copies=copies,
        replies=tuple(run.replies),
        redirects=_distinct_redirects(run.redirects),
        terminal=run.terminal,
        stopped_by=run.stopped_by,
        final_folders=final_folders,
        final_flags=tuple(sorted(run.flags.values())) if final_folders else (),
        traces=tuple(run.traces),
    )


def rule_active(rule: Rule, now: datetime) -> bool:
    """Whether ``now`` falls on a day of the rule's ``active`` window (always, without one)."""
    window = rule.active
    if window is None:
        return True
    today = now.astimezone(zone_of(window.zone) or timezone.utc).date()
    return (window.start is None or window.start <= today) and (window.until is None or today <= window.until)


def outside_window(rules: Iterable[Rule], now: datetime) -> list[str]:
    """A plan's warning for each rule that does nothing now because of its ``active`` window."""
    return [f"rule {rule.name!r} is outside its active window ({rule.active}): it does nothing now"
            for rule in rules if not rule_active(rule, now)]


def evaluate_message(
    rules: Sequence[Rule],
    msg: MessageView,
    *,
    folder: str,
    ctx: EvalContext,
    verdicts: Mapping[str, bool] | None = None,
    delimiter: str | None = "/",
    explain: bool = False,
) -> MessageOutcome:
    """Run ``rules`` over one message in ``folder`` and say what happens to it.

    ``verdicts`` holds rule results the server's SEARCH already decided exactly; such a
    rule is not evaluated locally, unless an earlier rule changed flags and the rule
    tests flags.  With ``explain`` every evaluated rule's ``Trace`` is kept.
    """
    run = _Run(flags=_flag_map(msg.flags))
    original_keys = set(run.flags)
    for rule in rules:
        if not rule_applies(rule, folder, delimiter):
            continue
        if not rule_active(rule, ctx.now):
            if explain:
                run.traces.append((rule.name, Trace(rule.when, False, f"outside its active window ({rule.active})")))
            continue
        flags_changed = set(run.flags) != original_keys
        view = msg.with_flags(run.flags.values()) if flags_changed else msg
        held, trace = _decide(rule, view, ctx, _verdict(rule, verdicts, flags_changed), explain)
        if trace is not None:
            run.traces.append((rule.name, trace))
        if held:
            _apply_rule(run, rule, folder, delimiter)
            if rule.terminal:
                break
    return _outcome(run, msg, folder, delimiter)
