"""The plan: everything a run would do, as a value.

``plan`` renders it, ``run`` executes it; both share every line up to that point.  The
grouping here is pure: per-message outcomes go in, per-folder operations come out, one
STORE per flag change set, one COPY/MOVE per destination, one deletion set, with UID sets
compressed to ranges and split (by the backend) so no command line is unbounded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from mailrules.model import Reply

if TYPE_CHECKING:
    from mailrules.engine import MessageOutcome
    from mailrules.message import MessageView

EXAMPLES_PER_RULE = 3


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """What a person needs to recognise a message in a plan."""

    uid: int
    date: str
    sender: str
    subject: str


@dataclass(frozen=True, slots=True)
class FlagChange:
    """``UID STORE uids +FLAGS (flags)`` (or ``-FLAGS`` when not ``add``)."""

    add: bool
    flags: tuple[str, ...]
    uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Transfer:
    """A COPY (``kind='copy'``) or a terminal MOVE/trash of ``uids`` to ``destination``."""

    kind: Literal["copy", "move", "trash"]
    destination: str
    uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Send:
    """A reply or redirect for one message, decided (sent or skipped) at planning time."""

    kind: Literal["reply", "redirect"]
    uid: int
    rule: str
    recipient: str | None
    subject: str = ""
    preview: str = ""
    skip_reason: str | None = None
    reply: Reply | None = field(default=None, compare=False)
    sender_key: str | None = None  # who once_per is counted against
    envelope_from: str | None = None
    payload: bytes | None = field(default=None, repr=False)  # the exact reply; a redirect reads the original at send time
    # Skipped because it could not be built (its template failed, its address can't be sent
    # to), not because a guard said no: the run reports it as a failure and exits 1.
    failed: bool = False


@dataclass(frozen=True, slots=True)
class Skipped:
    """An action left out of the plan because this mailbox or account can't carry it out."""

    action: str  # as the plan shows it, e.g. ``flag +$Invoice``
    uids: tuple[int, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class FolderPlan:
    folder: str
    uidvalidity: int
    uidnext: int
    messages: int  # EXISTS when planned
    scanned_from_uid: int  # 1 on a full run, last seen + 1 with --new-only
    candidates: int  # messages some rule's server search returned
    flag_changes: tuple[FlagChange, ...] = ()
    copies: tuple[Transfer, ...] = ()
    sends: tuple[Send, ...] = ()
    moves: tuple[Transfer, ...] = ()
    deletions: tuple[int, ...] = ()
    skipped: tuple[Skipped, ...] = ()

    @property
    def has_work(self) -> bool:
        return bool(self.flag_changes or self.copies or self.pending_sends or self.moves or self.deletions)

    @property
    def pending_sends(self) -> tuple[Send, ...]:
        return tuple(send for send in self.sends if send.skip_reason is None)

    @property
    def removed_count(self) -> int:
        """Messages this folder loses to trash or deletion (what the safety threshold counts)."""
        trashed = sum(len(t.uids) for t in self.moves if t.kind == "trash")
        return trashed + len(self.deletions)


@dataclass(frozen=True, slots=True)
class RuleSummary:
    rule: str
    matched: int
    examples: tuple[MessageSummary, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    account: str
    now: datetime
    new_only: bool
    folders: tuple[FolderPlan, ...]
    rules: tuple[RuleSummary, ...]
    create_folders: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    # How this mailbox removes a message: by UID EXPUNGE of exactly ours, or (a server
    # without UIDPLUS) by leaving it flagged \Deleted; and whether a move is one command.
    expunges_by_uid: bool = True
    moves_in_one_step: bool = True

    @property
    def has_work(self) -> bool:
        return any(folder.has_work for folder in self.folders)

    @property
    def removed_count(self) -> int:
        return sum(folder.removed_count for folder in self.folders)


# ---------------------------------------------------------------- grouping (pure)


@dataclass(frozen=True, slots=True)
class Applied:
    """Non-idempotent actions already done for messages of a folder, from the state journal.

    A rule that copies or replies must not do it again on the next run over the same
    message, so these are subtracted from the outcomes before grouping.  A message a run
    moved or deleted but could not expunge (``left_flagged``) is not planned at all.
    """

    copies: frozenset[tuple[int, str]] = frozenset()  # (uid, destination)
    sends: frozenset[tuple[int, str, str]] = frozenset()  # (uid, kind, rule)
    left_flagged: frozenset[int] = frozenset()  # flagged \Deleted by a run that could not expunge them


def summarize(uid: int, message: MessageView) -> MessageSummary:
    when = message.internaldate.strftime("%Y-%m-%d %H:%M") if message.internaldate else "?"
    senders = message.header_values("From")
    return MessageSummary(uid, when, _one_line(senders[0]) if senders else "", _one_line(message.subject))


def _one_line(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass
class FolderPlanBuilder:
    """Accumulates per-message outcomes of one folder, then groups them into operations."""

    folder: str
    applied: Applied = field(default_factory=Applied)
    # Whether the destination already holds this message's copy, for stores that can tell
    # without the journal (a Maildir: its UIDs don't outlive a process).
    holds_copy: Callable[[int, str], bool] | None = None
    adds: dict[frozenset[str], list[int]] = field(default_factory=lambda: defaultdict(list))
    removes: dict[frozenset[str], list[int]] = field(default_factory=lambda: defaultdict(list))
    copies: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    moves: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    deletions: list[int] = field(default_factory=list)
    sends: list[Send] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def add(self, uid: int, outcome: MessageOutcome) -> None:
        copies = [dest for _, dest in outcome.copies
                  if (uid, dest) not in self.applied.copies and dest != self.folder and not self._held(uid, dest)]
        gone = outcome.terminal is not None and outcome.terminal[0] == "delete"
        if not (gone and not copies):
            self._flags(uid, outcome)
        for dest in dict.fromkeys(copies):
            self.copies[dest].append(uid)
        self._sends(uid, outcome)
        self._terminal(uid, outcome)

    def _held(self, uid: int, destination: str) -> bool:
        return self.holds_copy is not None and self.holds_copy(uid, destination)

    def _flags(self, uid: int, outcome: MessageOutcome) -> None:
        if outcome.flag_adds:
            self.adds[frozenset(outcome.flag_adds)].append(uid)
        if outcome.flag_removes:
            self.removes[frozenset(outcome.flag_removes)].append(uid)

    def _sends(self, uid: int, outcome: MessageOutcome) -> None:
        for rule, reply in outcome.replies:
            if (uid, "reply", rule) not in self.applied.sends:
                self.sends.append(Send("reply", uid, rule, None, reply=reply))
        for rule, address in outcome.redirects:
            if (uid, "redirect", rule) not in self.applied.sends:
                self.sends.append(Send("redirect", uid, rule, address))

    def _terminal(self, uid: int, outcome: MessageOutcome) -> None:
        if outcome.terminal is None:
            return
        kind, destination, _rule = outcome.terminal
        if kind == "delete":
            self.deletions.append(uid)
        elif destination is not None and destination != self.folder:
            self.moves[(kind, destination)].append(uid)

    def without_flags(self, refused: Mapping[str, str]) -> None:
        """Leave out the flags this folder can't store (flag -> why), noting them as skipped."""
        kept_groups: dict[frozenset[str], list[int]] = defaultdict(list)
        dropped: dict[tuple[str, str], list[int]] = defaultdict(list)
        for flags, uids in self.adds.items():
            for flag in flags & refused.keys():
                dropped[(flag, refused[flag])].extend(uids)
            kept = frozenset(flags - refused.keys())
            if kept:
                kept_groups[kept].extend(uids)
        self.adds = kept_groups
        self.skipped.extend(Skipped(f"flag +{flag}", tuple(sorted(uids)), reason)
                            for (flag, reason), uids in sorted(dropped.items()))

    def build(self, *, uidvalidity: int, uidnext: int, messages: int, scanned_from_uid: int, candidates: int,
              sends: Iterable[Send] | None = None) -> FolderPlan:
        return FolderPlan(
            folder=self.folder,
            uidvalidity=uidvalidity,
            uidnext=uidnext,
            messages=messages,
            scanned_from_uid=scanned_from_uid,
            candidates=candidates,
            flag_changes=_flag_changes(True, self.adds) + _flag_changes(False, self.removes),
            copies=tuple(Transfer("copy", dest, tuple(sorted(uids))) for dest, uids in sorted(self.copies.items())),
            sends=tuple(self.sends if sends is None else sends),
            moves=tuple(
                Transfer(kind, dest, tuple(sorted(uids)))  # type: ignore[arg-type]
                for (kind, dest), uids in sorted(self.moves.items())
            ),
            deletions=tuple(sorted(self.deletions)),
            skipped=tuple(self.skipped),
        )


def _flag_changes(add: bool, groups: Mapping[frozenset[str], list[int]]) -> tuple[FlagChange, ...]:
    return tuple(
        FlagChange(add, tuple(sorted(flags)), tuple(sorted(uids)))
        for flags, uids in sorted(groups.items(), key=lambda item: sorted(item[0]))
    )


@dataclass
class RuleTally:
    """Per-rule match counts and a few examples, across folders."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[MessageSummary]] = field(default_factory=lambda: defaultdict(list))

    def add(self, uid: int, message: MessageView, outcome: MessageOutcome) -> None:
        for rule in outcome.matched:
            self.counts[rule] = self.counts.get(rule, 0) + 1
            if len(self.examples[rule]) < EXAMPLES_PER_RULE:
                self.examples[rule].append(summarize(uid, message))

    def summaries(self, rule_order: Iterable[str]) -> tuple[RuleSummary, ...]:
        return tuple(
            RuleSummary(name, self.counts[name], tuple(self.examples[name]))
            for name in rule_order
            if name in self.counts
        )
