"""``mailrules undo RUN``: put back what one run did, from its journal.

Each message the run touched is followed through its journalled operations: where it came
from, the flags the run changed, the copies it made and where it moved it (the
destination UIDs its COPYUID/MOVE responses gave, else found again by fingerprint above
the destination's recorded UIDNEXT).  The undo is an ordinary Plan — flags restored,
moved messages moved back, copies removed by their own UIDs — shown like ``plan`` and
carried out by the same executor, so it is journalled (and can itself be undone) and has
the same safety: copy before delete, UID EXPUNGE of our own UIDs only.

A message is acted on only where the run left it, verified by UIDVALIDITY and by its
fingerprint (Message-ID, size, INTERNALDATE); one moved, deleted or replaced since by
another client is left alone and reported.  A flag is restored only while it is still as
the run left it.  Deletions and sent replies or redirects can't be taken back: said so.
"""

from __future__ import annotations

import json

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailrules.backends.base import Mailbox
from mailrules.plan import FlagChange, FolderPlan, MessageSummary, Plan, RuleSummary, Transfer
from mailrules.state import Intent

Fingerprint = tuple[str, int, str]
Place = tuple[str, int, int]  # (folder, uidvalidity, uid)


@dataclass(frozen=True, slots=True)
class Landing:
    """Where a transfer put one message: the destination, and its UID there when the server said."""

    folder: str
    uidvalidity: int | None
    uid: int | None
    floor: int | None  # the destination's UIDNEXT before the transfer, to look from without COPYUID
    fingerprint: Fingerprint | None


@dataclass
class Trail:
    """One message of the run: where it was, and what the run did to it."""

    origin: Place
    rule: str | None = None
    added: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    copies: list[Landing] = field(default_factory=list)
    moved: Landing | None = None
    trashed: bool = False
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class UndoPlan:
    plan: Plan
    restored: int  # messages the plan puts back (flags, folder, copies)
    left_alone: tuple[str, ...]  # messages changed since, or what can't be undone, one line each


def trails(operations: Iterable[tuple[Intent, str, dict[str, Any]]]) -> tuple[dict[Place, Trail], list[str]]:
    """Follow every message through the run's finished operations; notes for what can't be undone."""
    found: dict[Place, Trail] = {}
    notes: list[str] = []
    for intent, status, result in operations:
        if status != "done":
            notes.append(f"{intent.kind} in {intent.folder} (UIDs {_uids(intent.uids)}) did not finish "
                         f"({status}); the next run settles it, undo leaves it alone")
            continue
        if intent.kind in ("reply", "redirect"):
            notes.append(f"a {intent.kind} (rule {intent.rule}) for {intent.folder} UID {_uids(intent.uids)} "
                         "was sent and can't be unsent")
            continue
        prints = {int(uid): (str(p[0]), int(p[1]), str(p[2])) for uid, p in result.get("prints", ())}
        copyuid = {int(src): int(dest) for src, dest in (result.get("copyuid") or {}).items()}
        for uid in intent.uids:
            trail = found.setdefault((intent.folder, intent.uidvalidity, uid),
                                     Trail((intent.folder, intent.uidvalidity, uid)))
            trail.rule = trail.rule or intent.rule
            _follow(trail, intent, uid, prints.get(uid), copyuid.get(uid))
    return found, notes


def _follow(trail: Trail, intent: Intent, uid: int, print_: Fingerprint | None, dest_uid: int | None) -> None:
    flags = set(intent.details.get("flags") or ())
    if intent.kind == "flag":
        trail.added |= flags
        trail.removed -= flags
    elif intent.kind == "unflag":
        trail.removed |= flags
        trail.added -= flags
    elif intent.kind == "delete":
        trail.deleted = trail.moved is None  # the COPY half of a MOVE without MOVE support is not a deletion
    elif intent.kind in ("copy", "move", "trash") and intent.destination is not None:
        landing = Landing(intent.destination, intent.details.get("dest_uidvalidity"), dest_uid,
                          intent.details.get("dest_uidnext"), print_)
        if intent.kind == "copy":
            trail.copies.append(landing)
        else:
            trail.moved, trail.trashed, trail.deleted = landing, intent.kind == "trash", False


# ---------------------------------------------------------------- finding the messages again


@dataclass
class _Folders:
    """What the mailbox holds now, read once per folder (EXAMINE; nothing changes)."""

    mailbox: Mailbox
    seen: dict[str, tuple[int, int, int, dict[int, tuple[Fingerprint, frozenset[str], MessageSummary]]]] = \
        field(default_factory=dict)

    def folder(self, name: str) -> tuple[int, int, int, dict[int, tuple[Fingerprint, frozenset[str], MessageSummary]]]:
        """(UIDVALIDITY, UIDNEXT, EXISTS, {uid: (fingerprint, flags, summary)}) of a folder; UIDVALIDITY 0 if gone."""
        if name not in self.seen:
            self.seen[name] = self._read(name)
        return self.seen[name]

    def _read(self, name: str):  # type: ignore[no-untyped-def]
        from mailrules.errors import BackendError
        from mailrules.execute import FINGERPRINT_NEEDS
        from mailrules.plan import summarize
        from mailrules.query import EVERYTHING

        try:
            status = self.mailbox.open_folder(name, readonly=True)
        except BackendError:
            if name in self.mailbox.list_folders():
                raise
            return 0, 0, 0, {}
        messages = {}
        if status.exists:
            for uid, message in self.mailbox.fetch(self.mailbox.search(EVERYTHING), FINGERPRINT_NEEDS):
                ident = message.message_id or "|".join(
                    (message.header_values(name_) or [""])[0] for name_ in ("Date", "From", "Subject"))
                when = message.internaldate.isoformat() if message.internaldate else ""
                messages[uid] = ((ident, message.size, when), message.flags, summarize(uid, message))
        return status.uidvalidity, status.uidnext, status.exists, messages


def _locate(landing: Landing, folders: _Folders, claimed: set[Place]) -> Place | None:
    """The message a transfer put in ``landing.folder``, if it is still there and still the same one."""
    validity, _, _, messages = folders.folder(landing.folder)
    if landing.uidvalidity is not None and validity != landing.uidvalidity:
        return None
    if landing.uid is not None:
        held = messages.get(landing.uid)
        if held is None or (landing.fingerprint is not None and held[0] != landing.fingerprint):
            return None
        return landing.folder, validity, landing.uid
    if landing.fingerprint is None:
        return None
    # No COPYUID (no UIDPLUS): the first unclaimed message with its fingerprint above the recorded floor.
    for uid in sorted(messages):
        place = (landing.folder, validity, uid)
        if uid >= (landing.floor or 1) and messages[uid][0] == landing.fingerprint and place not in claimed:
            return place
    return None


# ---------------------------------------------------------------- the plan


@dataclass
class _Builder:
    folders: _Folders
    adds: dict[str, dict[tuple[str, ...], list[int]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    removes: dict[str, dict[tuple[str, ...], list[int]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    moves: dict[str, dict[str, list[int]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    deletions: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    claimed: set[Place] = field(default_factory=set)
    examples: dict[str, list[MessageSummary]] = field(default_factory=lambda: defaultdict(list))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    left_alone: list[str] = field(default_factory=list)
    already: int = 0  # messages an interrupted undo already put back

    def add(self, trail: Trail) -> None:
        where = self._where(trail)
        if where is None:
            return
        folder, _, uid = where
        _, _, _, messages = self.folders.folder(folder)
        _print, flags, summary = messages[uid]
        keys = {flag.lower() for flag in flags}
        # Only flags still as the run left them: a change made since by someone else stands.
        still_added = tuple(sorted(flag for flag in trail.added if flag.lower() in keys))
        still_removed = tuple(sorted(flag for flag in trail.removed if flag.lower() not in keys))
        if still_added:
            self.removes[folder][still_added].append(uid)
        if still_removed:
            self.adds[folder][still_removed].append(uid)
        if trail.moved is not None:
            self.moves[folder][trail.origin[0]].append(uid)
        copies = self._copies(trail)
        if still_added or still_removed or trail.moved is not None or copies:
            label = f"undo {trail.rule}" if trail.rule else "put back"
            self.counts[label] += 1
            if len(self.examples[label]) < 3:
                self.examples[label].append(summary)

    def _where(self, trail: Trail) -> Place | None:
        origin = f"{trail.origin[0]} UID {trail.origin[2]}"
        if trail.deleted:
            self.left_alone.append(f"{origin} was deleted by the run and can't be restored")
            return None
        if trail.moved is not None:
            place = _locate(trail.moved, self.folders, self.claimed)
            if place is None and self._already_back(trail):
                return None
            if place is None:
                self.left_alone.append(f"{origin}: no longer where the run moved it ({trail.moved.folder}); "
                                       "moved, changed or deleted since — left alone")
                return None
            self.claimed.add(place)
            return place
        validity, _, _, messages = self.folders.folder(trail.origin[0])
        if validity != trail.origin[1] or trail.origin[2] not in messages:
            self.left_alone.append(f"{origin}: no longer there (moved or deleted since) — left alone")
            return None
        return trail.origin

    def _already_back(self, trail: Trail) -> bool:
        """Whether an earlier, interrupted undo already moved this message back where it came from."""
        assert trail.moved is not None
        back = Landing(trail.origin[0], trail.origin[1], None, trail.origin[2] + 1, trail.moved.fingerprint)
        place = _locate(back, self.folders, self.claimed)
        if place is not None:
            self.claimed.add(place)
            self.already += 1
        return place is not None

    def _copies(self, trail: Trail) -> int:
        removed = 0
        for landing in trail.copies:
            place = _locate(landing, self.folders, self.claimed)
            if place is None:
                self.left_alone.append(f"{trail.origin[0]} UID {trail.origin[2]}: its copy in {landing.folder} "
                                       "is gone or changed since — left alone")
                continue
            self.claimed.add(place)
            self.deletions[place[0]].append(place[2])
            removed += 1
        return removed

    def folder_plans(self) -> tuple[FolderPlan, ...]:
        names = dict.fromkeys([*self.removes, *self.adds, *self.moves, *self.deletions])
        plans = []
        for name in names:
            validity, uidnext, exists, _ = self.folders.folder(name)
            changes = [FlagChange(False, flags, tuple(sorted(uids))) for flags, uids in self.removes[name].items()]
            changes += [FlagChange(True, flags, tuple(sorted(uids))) for flags, uids in self.adds[name].items()]
            moves = tuple(Transfer("move", dest, tuple(sorted(uids))) for dest, uids in self.moves[name].items())
            plans.append(FolderPlan(name, validity, uidnext, exists, 1, 0, flag_changes=tuple(changes), moves=moves,
                                    deletions=tuple(sorted(self.deletions[name]))))
        return tuple(plans)


def build_undo_plan(run_id: int, account: str, operations: Sequence[tuple[Intent, str, dict[str, Any]]],
                    mailbox: Mailbox, now: datetime) -> UndoPlan:
    found, notes = trails(operations)
    builder = _Builder(_Folders(mailbox))
    for trail in found.values():
        builder.add(trail)
    folder_plans = builder.folder_plans()
    origins = {trail.origin[0] for trail in found.values() if trail.moved is not None}
    create = tuple(sorted(name for name in origins if builder.folders.folder(name)[0] == 0
                          and any(name in {t.destination for t in plan.moves} for plan in folder_plans)))
    rules = tuple(RuleSummary(label, count, tuple(builder.examples[label])) for label, count in builder.counts.items())
    plan = Plan(account=account, now=now, new_only=False, folders=folder_plans,
                rules=rules, create_folders=create, warnings=tuple(notes + builder.left_alone))
    return UndoPlan(plan, sum(builder.counts.values()), tuple(notes + builder.left_alone))


def _uids(uids: Sequence[int]) -> str:
    from mailrules.uidset import uid_set

    return uid_set(uids)


# ---------------------------------------------------------------- the command


@dataclass(frozen=True, slots=True)
class UndoRequest:
    run_id: int
    now: datetime
    account: str | None = None
    accounts_file: str | None = None
    state_file: str | None = None
    confirmed: bool = False
    verbose: int = 0
    as_json: bool = False


def run_undo(request: UndoRequest, out: Any) -> int:
    """``mailrules undo RUN``: the undo plan, shown like ``plan``; carried out with ``--yes``."""
    import sys
    from contextlib import ExitStack
    from pathlib import Path

    from mailrules.errors import UsageError
    from mailrules.render import render_plan, render_run_start
    from mailrules.state import State, default_state_path

    state = State(Path(request.state_file) if request.state_file else default_state_path())
    with ExitStack() as stack:
        stack.callback(state.close)
        run = state.run(request.run_id)
        if run is None or (request.account is not None and run.account != request.account):
            raise UsageError(f"no run #{request.run_id}" + (f" of account {request.account!r}" if request.account
                             else "") + " in the journal; `mailrules history` lists the recent ones")
        account = _account(run.account, request.accounts_file)
        if request.confirmed:
            from mailrules.lock import account_lock, imap_identity, mailbox_lock

            # The same two locks as `run`: one change to a mailbox at a time, whatever --state says.
            stack.enter_context(account_lock(state.path.parent, account.name))
            imap = account.imap
            note = stack.enter_context(mailbox_lock(imap_identity(imap.host, imap.port, imap.username), state.path))
            if note:
                print(f"note: {note}", file=sys.stderr)
        from mailrules.backends.open import open_mailbox
        from mailrules.journal import StateJournal

        mailbox = open_mailbox(account, request.verbose, state.path.parent)
        stack.callback(mailbox.close)
        journal = StateJournal(state, account.name, request.now)
        if request.confirmed and journal.pending():
            from mailrules.execute import recover

            for note in recover(mailbox, journal, journal.pending()):
                print(f"recovered: {note}", file=sys.stderr)
        undo = build_undo_plan(run.id, run.account, state.run_intents(run.id), mailbox, request.now)
        if not request.as_json:
            rendered = render_run_start(undo.plan) if request.confirmed else render_plan(undo.plan)
            print(_shown(rendered, undo.plan, run.id), file=out)
        if not request.confirmed:
            if request.as_json:
                print(json.dumps(_undo_json(undo, run.id), indent=2), file=out)
            return 0
        return _carry_out(undo, run.id, mailbox, journal, state, out, as_json=request.as_json)


def _undo_json(undo: UndoPlan, run_id: int) -> dict[str, Any]:
    from mailrules.render import plan_to_json

    return {"undo_of": run_id, "plan": json.loads(plan_to_json(undo.plan)), "left_alone": list(undo.left_alone)}


def _shown(rendered: str, plan: Plan, run_id: int) -> str:
    """The plan as ``plan`` renders it, titled and closed as an undo."""
    lines = rendered.splitlines()
    lines[0] = f"Undo of run #{run_id} of {plan.account} at {plan.now:%Y-%m-%d %H:%M %Z}"
    return "\n".join(lines).replace("`mailrules run` does exactly this", f"`mailrules undo {run_id} --yes` does exactly this")


def _carry_out(undo: UndoPlan, run_id: int, mailbox: Mailbox, journal: Any, state: Any, out: Any, *,
               as_json: bool = False) -> int:
    from mailrules.execute import execute_plan
    from mailrules.render import render_report, report_to_json

    if not undo.plan.has_work:
        if as_json:
            print(json.dumps({**_undo_json(undo, run_id), "restored": 0}, indent=2), file=out)
        return 0
    journal.run_id = state.begin_run(journal.account, "undo")
    try:
        report = execute_plan(undo.plan, mailbox, journal)
    except BaseException as exc:
        journal.finish("failed", {"undo_of": run_id, "error": str(exc)})
        raise
    report.warnings[:0] = list(undo.left_alone)
    journal.finish("warning" if undo.left_alone else "ok",
                   {"undo_of": run_id, "restored": undo.restored, "left_alone": list(undo.left_alone),
                    "folders": len(report.folders)})
    if as_json:
        print(json.dumps({**_undo_json(undo, run_id), "report": report_to_json(report), "restored": undo.restored},
                         indent=2), file=out)
        return 0
    print("", file=out)
    print(render_report(report), file=out)
    print(f"undo of run #{run_id}: {undo.restored} message(s) restored, {len(undo.left_alone)} left alone",
          file=out)
    return 0


def _account(name: str, accounts_file: str | None):  # type: ignore[no-untyped-def]
    from mailrules.accounts import load_accounts

    from mailrules.errors import CapabilityError

    if name.startswith("maildir:"):
        raise CapabilityError(f"run of {name} can't be undone: a Maildir's UIDs last one session, so the "
                              "journal can't find its messages again; undo works on IMAP accounts")
    account = load_accounts(accounts_file).pick(name)
    if account.imap is None:
        raise CapabilityError(f"account {name!r} is a Maildir: its UIDs last one session, so the journal can't "
                              "find its messages again; undo works on IMAP accounts")
    return account
