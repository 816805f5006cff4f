"""Carry out a reviewed Plan.  The only module that changes a mailbox.

Safety rules, in the order they matter:
- UIDVALIDITY is checked before touching a folder: the UIDs a person reviewed must still
  name the same messages.
- Per folder, per spec: flag changes, then copies, then replies/redirects, then moves and
  deletions — so a moved message carries its new flags and a message whose reply failed
  stays where it is.
- Every operation is journalled as an intent before it is sent and marked done after, so a
  run cut off at any point can be resumed (``recover``) without copying anything twice.
- Operations addressed by UID (STORE, UID EXPUNGE) are idempotent and are retried once
  after a dropped connection.  A COPY or MOVE is not: a server process that dies halfway
  through one can leave part of it in the destination, even unindexed (STATUS does not
  show it yet).  So a transfer whose outcome is unknown is *reconciled* first: the
  destination is opened (which makes the server index what landed), its messages are
  matched against fingerprints journalled before the command was sent, and only the
  messages that are not there are sent again; a move removes from the source only what is
  verifiably in the destination.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from mailrules.backends.base import CopyResult, FetchNeeds, Mailbox
from mailrules.errors import (BackendError, CapabilityError, ConnectionLost, MessagesVanished, MissingFolder,
                              SendRefused, StalePlanError)
from mailrules.plan import FolderPlan, Plan, Send, Transfer
from mailrules.query import EVERYTHING
from mailrules.uidset import uid_set

FINGERPRINT_NEEDS = FetchNeeds(headers=frozenset({"message-id", "date", "from", "subject"}))

Fingerprint = tuple[str, int, str]  # (Message-ID or Date|From|Subject, size, INTERNALDATE)
# Another client expunging while we transfer makes the server refuse the whole command;
# each retry names fewer messages, so a few rounds settle any realistic race.
VANISHED_RETRIES = 5


@dataclass(frozen=True, slots=True)
class Operation:
    """One journalled step: what was about to be done, and where copies would land.

    ``dest_uidnext`` is a floor of the destination's UIDs before a COPY or MOVE: after a
    cut-off, only messages at or above it can be copies this operation made.
    ``fingerprints`` identify each source message, to find its copy in the destination.
    """

    folder: str
    uidvalidity: int
    kind: str  # flag | unflag | copy | move | trash | delete | reply | redirect
    uids: tuple[int, ...]
    destination: str | None = None
    flags: tuple[str, ...] = ()
    rule: str | None = None
    dest_uidvalidity: int | None = None
    dest_uidnext: int | None = None
    fingerprints: tuple[tuple[int, Fingerprint], ...] = ()


def journal_prints(value: object) -> tuple[tuple[int, Fingerprint], ...]:
    """``Operation.fingerprints`` from the journal's JSON form (lists instead of tuples)."""
    if not isinstance(value, (list, tuple)):
        return ()
    return tuple((int(uid), (str(p[0]), int(p[1]), str(p[2]))) for uid, p in value)  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class DuplicateWatch:
    """A reconciled transfer whose destination is checked once more on the next run."""

    op_id: int
    destination: str
    uidvalidity: int
    uid_floor: int
    since: datetime


class Journal(Protocol):
    def intent(self, op: Operation) -> int: ...

    def done(self, op_id: int, result: dict[str, object]) -> None: ...

    def failed(self, op_id: int, error: str) -> None: ...

    def record_copies(self, folder: str, uidvalidity: int, pairs: Sequence[tuple[int, str]]) -> None: ...

    def record_send(self, folder: str, uidvalidity: int, send: Send) -> None: ...

    def folder_seen(self, folder: str, uidvalidity: int, highest_uid: int) -> None: ...

    def record_left_flagged(self, folder: str, uidvalidity: int, uids: Sequence[int]) -> None: ...

    def dest_floor(self, folder: str) -> tuple[int, int] | None: ...

    def raise_dest_floor(self, folder: str, uidvalidity: int, uid_floor: int) -> None: ...

    def watch_duplicates(self, op_id: int, destination: str, uidvalidity: int, uid_floor: int) -> None: ...

    def duplicate_watches(self) -> list[DuplicateWatch]: ...

    def watched_prints(self, op_id: int) -> list[tuple[int, Fingerprint]]: ...

    def retire_watch(self, op_id: int) -> None: ...


class Sender(Protocol):
    """Sends replies and redirects (smtp.py); raises BackendError when it can't."""

    def send(self, send: Send, mailbox: Mailbox) -> None: ...


@dataclass
class FolderReport:
    folder: str
    flagged: int = 0
    copied: int = 0
    moved: int = 0
    trashed: int = 0
    deleted: int = 0
    copied_left_flagged: int = 0  # moved or trashed on a server that can't expunge: the original stays, \Deleted
    left_flagged: int = 0  # deleted on such a server: flagged \Deleted, not expunged
    sent: int = 0
    failed_sends: list[str] = field(default_factory=list)
    held: set[int] = field(default_factory=set)  # UIDs kept in place because their send failed


@dataclass
class RunReport:
    folders: list[FolderReport] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # things a person should look at (exit 1)

    @property
    def failures(self) -> list[str]:
        return [failure for folder in self.folders for failure in folder.failed_sends]


Progress = Callable[[str], None]


def execute_plan(plan: Plan, mailbox: Mailbox, journal: Journal, *, sender: Sender | None = None,
                 progress: Progress | None = None) -> RunReport:
    _refuse_unsupported(plan, mailbox)
    report = RunReport()
    floors = _Floors(mailbox, journal)
    for folder in plan.create_folders:
        _retrying(mailbox, functools.partial(mailbox.create_folder, folder))
        report.created.append(folder)
    for folder_plan in plan.folders:
        if progress:
            progress(folder_plan.folder)
        folder_report = _execute_folder(folder_plan, mailbox, journal, sender, floors, report)
        report.folders.append(folder_report)
        # Everything below UIDNEXT-at-planning has been through the rules, except messages held
        # back by a failed send: --new-only must look at those again.
        seen = min(folder_report.held, default=folder_plan.uidnext) - 1
        journal.folder_seen(folder_plan.folder, folder_plan.uidvalidity, seen)
    report.notices.extend(mailbox.notices)
    return report


def _refuse_unsupported(plan: Plan, mailbox: Mailbox) -> None:
    """Fail before the first change rather than halfway through a folder."""
    if mailbox.features.keywords:
        return
    keywords = sorted({flag for folder in plan.folders for change in folder.flag_changes
                       for flag in change.flags if not flag.startswith("\\")})
    if keywords:
        raise CapabilityError(f"{mailbox.label} can't store keywords ({', '.join(keywords)}) that the rules set; "
                              "nothing was changed. Use system flags, or run against an IMAP account")


def _open_checked(mailbox: Mailbox, plan: FolderPlan) -> None:
    status = mailbox.open_folder(plan.folder, readonly=False)
    if status.uidvalidity != plan.uidvalidity:
        raise StalePlanError(
            f"folder {plan.folder!r} changed UIDVALIDITY from {plan.uidvalidity} to {status.uidvalidity} "
            "since it was planned (it was recreated or restored); nothing was done there. Run again to re-plan."
        )


def _execute_folder(plan: FolderPlan, mailbox: Mailbox, journal: Journal, sender: Sender | None,
                    floors: _Floors, run: RunReport) -> FolderReport:
    report = FolderReport(plan.folder)
    report.failed_sends += [f"{send.kind} for UID {send.uid} (rule {send.rule}): {send.skip_reason}"
                            for send in plan.sends if send.failed]
    if not plan.has_work:
        return report
    _retrying(mailbox, lambda: _open_checked(mailbox, plan))
    step = _Step(mailbox, journal, plan, floors, run.notices)
    for change in plan.flag_changes:
        step.flags(change.add, change.flags, change.uids)
        report.flagged += len(change.uids)
    for transfer in plan.copies:
        report.copied += step.copy(transfer)
    held = _send_all(plan, mailbox, journal, sender, report)
    report.held = held
    for transfer in plan.moves:
        uids = tuple(uid for uid in transfer.uids if uid not in held)
        step.move(transfer, uids)
        _count_removal(report, mailbox, journal, plan, transfer.kind, uids)
    deletions = tuple(uid for uid in plan.deletions if uid not in held)
    step.delete(deletions)
    _count_removal(report, mailbox, journal, plan, "delete", deletions)
    return report


def _leaves_originals(mailbox: Mailbox, kind: str) -> bool:
    """Whether removing messages leaves them flagged \\Deleted: no UIDPLUS, so no UID EXPUNGE,
    and a move without MOVE is a COPY followed by such a removal."""
    if mailbox.features.expunges_by_uid:
        return False
    return kind == "delete" or not mailbox.features.supports_move


def _count_removal(report: FolderReport, mailbox: Mailbox, journal: Journal, plan: FolderPlan, kind: str,
                   uids: tuple[int, ...]) -> None:
    """Count what a move, trash or deletion did; remember originals left behind flagged
    \\Deleted, so that no later run plans (and copies) them again."""
    if not uids:
        return
    if _leaves_originals(mailbox, kind):
        journal.record_left_flagged(plan.folder, plan.uidvalidity, uids)
        if kind == "delete":
            report.left_flagged += len(uids)
        else:
            report.copied_left_flagged += len(uids)
    elif kind == "trash":
        report.trashed += len(uids)
    elif kind == "move":
        report.moved += len(uids)
    else:
        report.deleted += len(uids)


def _send_all(plan: FolderPlan, mailbox: Mailbox, journal: Journal, sender: Sender | None,
              report: FolderReport) -> set[int]:
    """Send replies and redirects; return the UIDs whose send failed, which must not move."""
    held: set[int] = set()
    for send in plan.pending_sends:
        if sender is None:
            held.add(send.uid)
            report.failed_sends.append(f"{send.kind} for UID {send.uid} (rule {send.rule}): no SMTP configured")
            continue
        op_id = journal.intent(Operation(plan.folder, plan.uidvalidity, send.kind, (send.uid,), rule=send.rule))
        try:
            sender.send(send, mailbox)
        except SendRefused as exc:
            # Retrying can't help, so the message's other actions go ahead; the run still exits 1.
            journal.failed(op_id, str(exc))
            report.failed_sends.append(f"{send.kind} for UID {send.uid} (rule {send.rule}): {exc}")
            continue
        except BackendError as exc:
            journal.failed(op_id, str(exc))
            held.add(send.uid)
            report.failed_sends.append(f"{send.kind} for UID {send.uid} (rule {send.rule}): {exc}")
            continue
        journal.done(op_id, {"recipient": send.recipient})
        journal.record_send(plan.folder, plan.uidvalidity, send)
        report.sent += 1
        if send.kind == "reply":
            _after_reply(mailbox, plan, send)
    return held


def _after_reply(mailbox: Mailbox, plan: FolderPlan, send: Send) -> None:
    """Mark the original answered, and keep a copy of the reply where the rule asks."""
    _retrying(mailbox, lambda: mailbox.add_flags((send.uid,), ("\\Answered",)), plan)
    save_to = send.reply.save_to if send.reply is not None else None
    if save_to and send.payload is not None:
        payload = send.payload
        _retrying(mailbox, lambda: mailbox.append(save_to, payload, ("\\Seen",)), plan)


@dataclass
class _Step:
    mailbox: Mailbox
    journal: Journal
    plan: FolderPlan
    floors: _Floors
    notices: list[str]
    _prints: dict[int, Fingerprint] | None = None

    def _op(self, kind: str, uids: Sequence[int], **extra: object) -> Operation:
        return Operation(self.plan.folder, self.plan.uidvalidity, kind, tuple(uids), **extra)  # type: ignore[arg-type]

    def flags(self, add: bool, flags: tuple[str, ...], uids: tuple[int, ...]) -> None:
        op_id = self.journal.intent(self._op("flag" if add else "unflag", uids, flags=flags))
        call = self.mailbox.add_flags if add else self.mailbox.remove_flags
        _retrying(self.mailbox, lambda: call(uids, flags), self.plan)
        self.journal.done(op_id, {})

    def copy(self, transfer: Transfer) -> int:
        op = self._transfer_intent("copy", transfer.destination, transfer.uids)
        op_id = self.journal.intent(op)
        outcome = _transfer(self.mailbox, self.journal, self.plan, op, move=False)
        self.journal.record_copies(self.plan.folder, self.plan.uidvalidity,
                                   [(uid, transfer.destination) for uid in outcome.delivered])
        self._settled(op_id, op, outcome)
        return len(outcome.delivered)

    def move(self, transfer: Transfer, uids: tuple[int, ...]) -> None:
        if not uids:
            return
        op = self._transfer_intent(transfer.kind, transfer.destination, uids)
        op_id = self.journal.intent(op)
        native = self.mailbox.features.supports_move
        outcome = _transfer(self.mailbox, self.journal, self.plan, op, move=native)
        if not native:  # the COPY half is done: remove exactly the originals that are safe there
            delivered = outcome.delivered
            _retrying(self.mailbox, lambda: self.mailbox.delete(delivered), self.plan)
        self._settled(op_id, op, outcome)

    def delete(self, uids: tuple[int, ...]) -> None:
        if not uids:
            return
        op_id = self.journal.intent(self._op("delete", uids))
        _retrying(self.mailbox, lambda: self.mailbox.delete(uids), self.plan)
        self.journal.done(op_id, {})

    def _transfer_intent(self, kind: str, destination: str, uids: tuple[int, ...]) -> Operation:
        validity, floor = self.floors.floor(destination, self.plan)
        prints = self._fingerprints()
        return self._op(kind, uids, destination=destination, dest_uidvalidity=validity, dest_uidnext=floor,
                        fingerprints=tuple((uid, prints[uid]) for uid in uids if uid in prints))

    def _fingerprints(self) -> dict[int, Fingerprint]:
        """Every message this folder transfers, read in one FETCH before the first transfer."""
        if self._prints is None:
            uids = sorted({uid for transfer in self.plan.copies + self.plan.moves for uid in transfer.uids})
            self._prints = _retrying(self.mailbox, lambda: fingerprints(self.mailbox, uids), self.plan)
        return self._prints

    def _settled(self, op_id: int, op: Operation, outcome: TransferOutcome) -> None:
        assert op.destination is not None
        self.floors.after(op.destination, outcome)
        if outcome.reconciled is not None:
            self.notices.append(outcome.describe(op))
            self.journal.watch_duplicates(op_id, op.destination, *outcome.reconciled)
        self.journal.done(op_id, outcome.journal_result())


@dataclass
class _Floors:
    """Per destination, a UID below which no copy made from now on can land.

    The journal keeps one from earlier runs (raised by every COPYUID), so a steady cron
    run spends no command on it; a stale value only makes a reconciliation look further.
    """

    mailbox: Mailbox
    journal: Journal
    known: dict[str, tuple[int, int]] = field(default_factory=dict)

    def floor(self, destination: str, plan: FolderPlan) -> tuple[int, int]:
        if destination not in self.known:
            # Without UIDPLUS no COPYUID raises a stored floor, so it would only grow staler.
            stored = self.journal.dest_floor(destination) if self.mailbox.features.reports_copy_uids else None
            if stored is None:
                status = _retrying(self.mailbox, lambda: self.mailbox.status(destination), plan)
                stored = (status.uidvalidity, status.uidnext)
                self.journal.raise_dest_floor(destination, *stored)
            self.known[destination] = stored
        return self.known[destination]

    def after(self, destination: str, outcome: TransferOutcome) -> None:
        validity, uids = outcome.result.dest_uidvalidity, outcome.result.uid_map.values()
        if outcome.reconciled is not None:
            validity, floor = outcome.reconciled
        elif validity is not None and uids:
            floor = max(uids) + 1
        else:
            return
        if self.known.get(destination, (validity, 0))[0] == validity:
            self.known[destination] = (validity, max(floor, self.known.get(destination, (validity, 0))[1]))
        else:
            self.known[destination] = (validity, floor)
        self.journal.raise_dest_floor(destination, validity, floor)


# ---------------------------------------------------------------- transfers and reconciliation


@dataclass(frozen=True, slots=True)
class TransferOutcome:
    """What a COPY/MOVE achieved, retries and reconciliation included.

    ``delivered``: the operation's UIDs now verifiably in the destination.  ``found``:
    how many of them an interrupted attempt had already put there.  ``vanished``: UIDs
    another client expunged before they could be transferred.  ``reconciled``: when the
    outcome of an attempt had to be found out, the destination's (UIDVALIDITY, UIDNEXT)
    afterwards (copies a dying server delivers late land at or above it).
    """

    result: CopyResult
    delivered: tuple[int, ...]
    found: int = 0
    vanished: tuple[int, ...] = ()
    reconciled: tuple[int, int] | None = None
    causes: tuple[str, ...] = ()

    def describe(self, op: Operation) -> str:
        verb = "copy" if op.kind == "copy" else "move"
        what = f"{op.folder}: {' and '.join(dict.fromkeys(self.causes))} during the {verb} to {op.destination}"
        parts = [f"{self.found} message(s) were already there", f"{len(self.delivered) - self.found} sent again"]
        if self.vanished:
            parts.append(f"{len(self.vanished)} had been expunged by another client (UIDs {uid_set(self.vanished)})")
        return f"{what}: reconciled; " + ", ".join(parts)

    def journal_result(self) -> dict[str, object]:
        result: dict[str, object] = {"copyuid": self.result.uid_map}
        if self.reconciled is not None:
            result.update(reconciled=True, found=self.found, vanished=uid_set(self.vanished))
        return result


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """Where each message of an interrupted transfer is now."""

    landed: tuple[int, ...]  # still in the source, and a copy is in the destination
    moved: tuple[int, ...]  # gone from the source, its copy in the destination
    vanished: tuple[int, ...]  # gone from the source and not in the destination
    remaining: tuple[int, ...]  # still in the source, not in the destination: to send again
    dest_uidvalidity: int
    dest_uidnext: int


def _transfer(mailbox: Mailbox, journal: Journal, plan: FolderPlan, op: Operation, *, move: bool) -> TransferOutcome:
    """COPY (or MOVE) ``op.uids``, reconciling after every attempt whose outcome is unknown."""
    assert op.destination is not None
    destination = op.destination
    send = mailbox.move if move else mailbox.copy
    pending, results, causes = op.uids, [], []
    reconciled: Reconciliation | None = None
    reconnected = vanished_rounds = 0
    recreated = False
    while pending:
        try:
            results.append(send(pending, destination))
            break
        except MissingFolder as exc:  # renamed or deleted since planning; the command did nothing
            if recreated:
                raise
            recreated = True
            _recreate_destination(mailbox, exc, plan)
            continue
        except ConnectionLost:
            reconnected += 1
            if reconnected > 1:
                raise
            causes.append("the connection was lost")
            mailbox.reconnect()
        except MessagesVanished:
            vanished_rounds += 1
            if vanished_rounds > VANISHED_RETRIES:
                raise
            causes.append("another client expunged messages")
        _open_checked(mailbox, plan)  # a fresh SELECT also learns of other clients' expunges
        reconciled = reconcile(mailbox, op)
        if move and reconciled.landed:  # safe in the destination: only the original is left to remove
            _remove_landed(mailbox, journal, plan, reconciled.landed)
        pending = reconciled.remaining
    result = _merge(results)
    if reconciled is None:  # one clean answer: UIDs the server no longer had were simply not there
        return TransferOutcome(result, op.uids)
    found = reconciled.landed + reconciled.moved
    delivered = tuple(sorted(set(found) | set(reconciled.remaining)))
    after = _destination_status(mailbox, plan, destination)
    return TransferOutcome(result, delivered, len(found), reconciled.vanished, after, tuple(causes))


def _remove_landed(mailbox: Mailbox, journal: Journal, plan: FolderPlan, uids: tuple[int, ...]) -> None:
    """Remove originals whose copy a cut-off MOVE already left in the destination."""
    _retrying(mailbox, lambda: mailbox.delete(uids), plan)
    if _leaves_originals(mailbox, "delete"):
        journal.record_left_flagged(plan.folder, plan.uidvalidity, uids)


def _merge(results: Sequence[CopyResult]) -> CopyResult:
    uid_map: dict[int, int] = {}
    for result in results:
        uid_map.update(result.uid_map)
    validities = {result.dest_uidvalidity for result in results if result.dest_uidvalidity is not None}
    return CopyResult(validities.pop() if len(validities) == 1 else None, uid_map)


def _destination_status(mailbox: Mailbox, plan: FolderPlan, destination: str) -> tuple[int, int]:
    """(UIDVALIDITY, UIDNEXT) of the destination as the server sees it after indexing it."""
    status = mailbox.open_folder(destination, readonly=True)  # EXAMINE indexes; STATUS may not
    _open_checked(mailbox, plan)
    return status.uidvalidity, status.uidnext


def reconcile(mailbox: Mailbox, op: Operation) -> Reconciliation:
    """Which messages of ``op`` (its source folder selected) already reached the destination.

    The destination is EXAMINEd, which makes the server index messages a dying process
    left there; its messages since ``op.dest_uidnext`` are matched against the journalled
    fingerprints, each copy claimed once, so repeated or missing Message-IDs are told apart
    by size and INTERNALDATE.  Messages gone from the source claim their copies first: a
    MOVE that was cut off after expunging them put them there.
    """
    assert op.destination is not None
    present = fingerprints(mailbox, op.uids)
    prints = dict(op.fingerprints) or dict(present)
    prints.update((uid, print_) for uid, print_ in present.items() if uid not in prints)
    arrived, validity, uidnext = _arrivals(mailbox, op)
    _reopen_source(mailbox, op)
    landed: list[int] = []
    moved: list[int] = []
    vanished: list[int] = []
    remaining: list[int] = []
    for uid in sorted(op.uids, key=lambda uid: uid in present):  # the gone ones first
        claimed = _claim(arrived, prints.get(uid))
        if uid not in present:
            (moved if claimed else vanished).append(uid)
        else:
            (landed if claimed else remaining).append(uid)
    return Reconciliation(tuple(sorted(landed)), tuple(sorted(moved)), tuple(sorted(vanished)),
                          tuple(sorted(remaining)), validity, uidnext)


def _claim(arrived: Counter[Fingerprint], print_: Fingerprint | None) -> bool:
    if print_ is None or arrived[print_] <= 0:
        return False
    arrived[print_] -= 1
    return True


def _arrivals(mailbox: Mailbox, op: Operation) -> tuple[Counter[Fingerprint], int, int]:
    """Fingerprints of what the destination holds at or above the floor, and its status."""
    assert op.destination is not None
    status = mailbox.open_folder(op.destination, readonly=True)
    floor = op.dest_uidnext if status.uidvalidity == op.dest_uidvalidity and op.dest_uidnext else 1
    uids = mailbox.search(EVERYTHING, min_uid=floor) if status.exists else []
    return Counter(fingerprints(mailbox, uids).values()), status.uidvalidity, status.uidnext


def _reopen_source(mailbox: Mailbox, op: Operation) -> None:
    status = mailbox.open_folder(op.folder, readonly=False)
    if status.uidvalidity != op.uidvalidity:
        raise StalePlanError(f"folder {op.folder!r} changed UIDVALIDITY while a transfer from it was being "
                             "reconciled; nothing more was done there. Run again to re-plan.")


def fingerprints(mailbox: Mailbox, uids: Sequence[int]) -> dict[int, Fingerprint]:
    """Identify messages across folders: COPY keeps the header, size and INTERNALDATE."""
    result: dict[int, Fingerprint] = {}
    for uid, message in mailbox.fetch(list(uids), FINGERPRINT_NEEDS):
        ident = message.message_id or "|".join(
            message.header_values(name)[0] if message.header_values(name) else "" for name in ("Date", "From", "Subject")
        )
        when = message.internaldate.isoformat() if message.internaldate else ""
        result[uid] = (ident, message.size, when)
    return result


def _retrying(mailbox: Mailbox, call: Callable[[], object], plan: FolderPlan | None = None):  # type: ignore[no-untyped-def]
    """Run an idempotent operation once more after a dropped connection, or after creating
    a destination folder that another client renamed or deleted since planning."""
    try:
        return call()
    except ConnectionLost:
        mailbox.reconnect()
        if plan is not None:
            _open_checked(mailbox, plan)
        return call()
    except MissingFolder as exc:
        _recreate_destination(mailbox, exc, plan)
        return call()


def _recreate_destination(mailbox: Mailbox, missing: MissingFolder, plan: FolderPlan | None) -> None:
    """Create the destination another client renamed or deleted since planning, and go back
    to the folder being worked on (creating it may have changed the selection)."""
    if missing.folder is None:
        raise missing
    mailbox.create_folder(missing.folder)
    if plan is not None:
        _open_checked(mailbox, plan)


# ---------------------------------------------------------------- resuming a cut-off run


@dataclass(frozen=True, slots=True)
class PendingOperation:
    op_id: int
    operation: Operation


def recover(mailbox: Mailbox, journal: Journal, pending: Sequence[PendingOperation]) -> list[str]:
    """Settle the intents a cut-off run left behind, before anything is planned again.

    Re-planning redoes whatever is idempotent (flags, deletion by UID).  A COPY or MOVE
    whose outcome is unknown is reconciled and finished here, so the new plan neither
    copies a message twice nor leaves a duplicate behind.
    """
    notes: list[str] = []
    for item in pending:
        op = item.operation
        if op.destination is not None and op.kind in ("copy", "move", "trash") and op.dest_uidnext is not None:
            notes.append(_finish_transfer(mailbox, journal, item.op_id, op))
        elif op.kind == "delete":
            notes.append(_finish_deletion(mailbox, journal, op))
        journal.done(item.op_id, {"recovered": True})
    return notes


def _finish_transfer(mailbox: Mailbox, journal: Journal, op_id: int, op: Operation) -> str:
    assert op.destination is not None
    status = mailbox.open_folder(op.folder, readonly=False)
    if status.uidvalidity != op.uidvalidity:
        return f"{op.folder}: UIDVALIDITY changed since the interrupted run; its {op.kind} is re-planned from scratch"
    plan = FolderPlan(op.folder, op.uidvalidity, status.uidnext, status.exists, 1, 0)
    native = op.kind != "copy" and mailbox.features.supports_move
    found = reconcile(mailbox, op)
    if native and found.landed:
        _remove_landed(mailbox, journal, plan, found.landed)
    rest = TransferOutcome(CopyResult(None, {}), ())
    if found.remaining:
        remaining = {uid: print_ for uid, print_ in op.fingerprints if uid in set(found.remaining)}
        rest = _transfer(mailbox, journal, plan, _replace_uids(op, found.remaining, remaining), move=native)
    delivered = tuple(sorted(set(found.landed) | set(found.moved) | set(rest.delivered)))
    if op.kind == "copy":
        journal.record_copies(op.folder, op.uidvalidity, [(uid, op.destination) for uid in delivered])
    elif not native:
        _retrying(mailbox, lambda: mailbox.delete(delivered), plan)
        if _leaves_originals(mailbox, op.kind):
            journal.record_left_flagged(op.folder, op.uidvalidity, delivered)
    journal.watch_duplicates(op_id, op.destination, *_destination_status(mailbox, plan, op.destination))
    outcome = TransferOutcome(rest.result, delivered, len(found.landed) + len(found.moved),
                              found.vanished + rest.vanished, (0, 0), ("the previous run was interrupted",))
    return outcome.describe(op)


def _finish_deletion(mailbox: Mailbox, journal: Journal, op: Operation) -> str:
    """Expunge what an interrupted deletion already flagged ``\\Deleted``.

    Planning skips messages flagged ``\\Deleted`` (mail clients hide them), so a deletion
    cut off between its STORE and its UID EXPUNGE would otherwise never be finished.
    Messages it did not flag yet are simply planned again.
    """
    status = mailbox.open_folder(op.folder, readonly=False)
    if status.uidvalidity != op.uidvalidity:
        return f"{op.folder}: UIDVALIDITY changed since the interrupted run; its deletion is re-planned from scratch"
    flagged = tuple(uid for uid, message in mailbox.fetch(list(op.uids), FetchNeeds())
                    if "\\Deleted" in message.flags)
    if not flagged:
        return f"{op.folder}: interrupted deletion had flagged nothing; re-planned"
    mailbox.delete(flagged)
    if _leaves_originals(mailbox, "delete"):
        journal.record_left_flagged(op.folder, op.uidvalidity, flagged)
    return f"{op.folder}: completed interrupted deletion of {len(flagged)} message(s)"


def _replace_uids(op: Operation, uids: tuple[int, ...], prints: dict[int, Fingerprint]) -> Operation:
    return Operation(op.folder, op.uidvalidity, op.kind, uids, op.destination, op.flags, op.rule,
                     op.dest_uidvalidity, op.dest_uidnext, tuple(sorted(prints.items())))


def find_late_duplicates(mailbox: Mailbox, journal: Journal) -> list[str]:
    """Copies that a dying server delivered after a transfer was reconciled: reported, never removed.

    A server killed mid-COPY can leave message files that it only indexes later; the
    reconciliation could not see them, so each reconciled destination is looked at once
    more by the next run, for messages above what it held then with the same fingerprints.
    """
    warnings: list[str] = []
    for watch in journal.duplicate_watches():
        ours = {print_ for _, print_ in journal.watched_prints(watch.op_id)}
        try:
            late = _late_copies(mailbox, watch, ours)
        except ConnectionLost:
            raise
        except BackendError:  # the destination is gone or refused: nothing of ours can surface there
            late = []
        if late:
            warnings.append(
                f"{watch.destination}: {len(late)} message(s) (UIDs {uid_set(late)}) are second copies that the "
                f"server delivered late, after the transfer interrupted at {watch.since:%Y-%m-%d %H:%M} UTC had been "
                "reconciled; they were left in place: delete them by hand if you don't want them")
        journal.retire_watch(watch.op_id)
    return warnings


def _late_copies(mailbox: Mailbox, watch: DuplicateWatch, ours: set[Fingerprint]) -> list[int]:
    status = mailbox.open_folder(watch.destination, readonly=True)
    if status.uidvalidity != watch.uidvalidity or status.uidnext <= watch.uid_floor or not ours:
        return []
    uids = mailbox.search(EVERYTHING, min_uid=watch.uid_floor)
    return sorted(uid for uid, print_ in fingerprints(mailbox, uids).items() if print_ in ours)
