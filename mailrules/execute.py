"""Carry out a reviewed Plan.  The only module that changes a mailbox.

Safety rules, in the order they matter:
- UIDVALIDITY is checked before touching a folder: the UIDs a person reviewed must still
  name the same messages.
- Per folder, per spec: flag changes, then copies, then replies/redirects, then moves and
  deletions — so a moved message carries its new flags and a message whose reply failed
  stays where it is.
- Every operation is journalled as an intent before it is sent and marked done after, so a
  run cut off at any point can be resumed (``recover``) without copying anything twice.
- Operations addressed by UID (STORE, MOVE, UID EXPUNGE) are idempotent and are retried
  once after a dropped connection; a COPY is retried only for the messages the
  destination does not already hold.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mailrules.backends.base import CopyResult, FetchNeeds, Mailbox
from mailrules.errors import BackendError, CapabilityError, ConnectionLost, MissingFolder, SendRefused, StalePlanError
from mailrules.plan import FolderPlan, Plan, Send, Transfer

FINGERPRINT_NEEDS = FetchNeeds(headers=frozenset({"message-id", "date", "from", "subject"}))

Fingerprint = tuple[str, int, str]  # (Message-ID or Date|From|Subject, size, INTERNALDATE)


@dataclass(frozen=True, slots=True)
class Operation:
    """One journalled step: what was about to be done, and where copies would land.

    ``dest_uidnext`` is the destination's UIDNEXT just before a COPY: after a cut-off, only
    messages at or above it can be copies this operation made.
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


class Journal(Protocol):
    def intent(self, op: Operation) -> int: ...

    def done(self, op_id: int, result: dict[str, object]) -> None: ...

    def failed(self, op_id: int, error: str) -> None: ...

    def record_copies(self, folder: str, uidvalidity: int, pairs: Sequence[tuple[int, str]]) -> None: ...

    def record_send(self, folder: str, uidvalidity: int, send: Send) -> None: ...

    def folder_seen(self, folder: str, uidvalidity: int, highest_uid: int) -> None: ...

    def record_left_flagged(self, folder: str, uidvalidity: int, uids: Sequence[int]) -> None: ...


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

    @property
    def failures(self) -> list[str]:
        return [failure for folder in self.folders for failure in folder.failed_sends]


Progress = Callable[[str], None]


def execute_plan(plan: Plan, mailbox: Mailbox, journal: Journal, *, sender: Sender | None = None,
                 progress: Progress | None = None) -> RunReport:
    _refuse_unsupported(plan, mailbox)
    report = RunReport()
    for folder in plan.create_folders:
        _retrying(mailbox, functools.partial(mailbox.create_folder, folder))
        report.created.append(folder)
    for folder_plan in plan.folders:
        if progress:
            progress(folder_plan.folder)
        folder_report = _execute_folder(folder_plan, mailbox, journal, sender)
        report.folders.append(folder_report)
        # Everything below UIDNEXT-at-planning has been through the rules, except messages held
        # back by a failed send: --new-only must look at those again.
        seen = min(folder_report.held, default=folder_plan.uidnext) - 1
        journal.folder_seen(folder_plan.folder, folder_plan.uidvalidity, seen)
    report.notices.extend(getattr(mailbox, "notices", []))
    return report


def _refuse_unsupported(plan: Plan, mailbox: Mailbox) -> None:
    """Fail before the first change rather than halfway through a folder."""
    if getattr(mailbox, "supports_keywords", True):
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


def _execute_folder(plan: FolderPlan, mailbox: Mailbox, journal: Journal, sender: Sender | None) -> FolderReport:
    report = FolderReport(plan.folder)
    report.failed_sends += [f"{send.kind} for UID {send.uid} (rule {send.rule}): {send.skip_reason}"
                            for send in plan.sends if send.failed]
    if not plan.has_work:
        return report
    _retrying(mailbox, lambda: _open_checked(mailbox, plan))
    step = _Step(mailbox, journal, plan)
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
    if getattr(mailbox, "expunges_by_uid", True):
        return False
    return kind == "delete" or "MOVE" not in mailbox.capabilities


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

    def _op(self, kind: str, uids: Sequence[int], **extra: object) -> Operation:
        return Operation(self.plan.folder, self.plan.uidvalidity, kind, tuple(uids), **extra)  # type: ignore[arg-type]

    def flags(self, add: bool, flags: tuple[str, ...], uids: tuple[int, ...]) -> None:
        op_id = self.journal.intent(self._op("flag" if add else "unflag", uids, flags=flags))
        call = self.mailbox.add_flags if add else self.mailbox.remove_flags
        _retrying(self.mailbox, lambda: call(uids, flags), self.plan)
        self.journal.done(op_id, {})

    def copy(self, transfer: Transfer) -> int:
        op = self._copy_intent("copy", transfer.destination, transfer.uids)
        op_id = self.journal.intent(op)
        result = _copy_once(self.mailbox, self.plan, op)
        self.journal.record_copies(self.plan.folder, self.plan.uidvalidity,
                                   [(uid, transfer.destination) for uid in transfer.uids])
        self.journal.done(op_id, {"copyuid": result.uid_map})
        return len(transfer.uids)

    def move(self, transfer: Transfer, uids: tuple[int, ...]) -> None:
        if not uids:
            return
        if "MOVE" in self.mailbox.capabilities:
            op_id = self.journal.intent(self._op(transfer.kind, uids, destination=transfer.destination))
            result = _retrying(self.mailbox, lambda: self.mailbox.move(uids, transfer.destination), self.plan)
            self.journal.done(op_id, {"copyuid": result.uid_map})
            return
        op = self._copy_intent(transfer.kind, transfer.destination, uids)
        op_id = self.journal.intent(op)
        result = _copy_once(self.mailbox, self.plan, op)
        _retrying(self.mailbox, lambda: self.mailbox.delete(uids), self.plan)
        self.journal.done(op_id, {"copyuid": result.uid_map})

    def delete(self, uids: tuple[int, ...]) -> None:
        if not uids:
            return
        op_id = self.journal.intent(self._op("delete", uids))
        _retrying(self.mailbox, lambda: self.mailbox.delete(uids), self.plan)
        self.journal.done(op_id, {})

    def _copy_intent(self, kind: str, destination: str, uids: tuple[int, ...]) -> Operation:
        dest = _retrying(self.mailbox, lambda: self.mailbox.status(destination), self.plan)
        return self._op(kind, uids, destination=destination, dest_uidvalidity=dest.uidvalidity,
                        dest_uidnext=dest.uidnext)


def _copy_once(mailbox: Mailbox, plan: FolderPlan, op: Operation) -> CopyResult:
    """COPY ``op.uids`` unless (part of) it already landed, e.g. before a dropped connection."""
    assert op.destination is not None
    try:
        return mailbox.copy(op.uids, op.destination)
    except MissingFolder as exc:  # renamed or deleted since planning; the COPY did nothing
        _recreate_destination(mailbox, exc, plan)
        return mailbox.copy(op.uids, op.destination)
    except ConnectionLost:
        mailbox.reconnect()
        _open_checked(mailbox, plan)
        missing = uncopied(mailbox, op)
        return mailbox.copy(missing, op.destination) if missing else CopyResult(None, {})


def uncopied(mailbox: Mailbox, op: Operation) -> tuple[int, ...]:
    """The UIDs of ``op`` still in the (selected) source folder whose copy has not landed.

    A copy keeps the header, size and INTERNALDATE, so the source messages are matched
    against what arrived in the destination since ``dest_uidnext``.  UIDs gone from the
    source were already moved or deleted and need nothing more.
    """
    assert op.destination is not None and op.dest_uidnext is not None
    source = fingerprints(mailbox, op.uids)
    dest = mailbox.status(op.destination)
    if dest.uidvalidity != op.dest_uidvalidity or dest.uidnext <= op.dest_uidnext:
        return tuple(source)  # nothing arrived there since the intent (or it was recreated)
    landed = _landed_fingerprints(mailbox, op)
    remaining: list[int] = []
    for uid, print_ in source.items():
        if landed.get(print_, 0) > 0:
            landed[print_] -= 1
        else:
            remaining.append(uid)
    return tuple(remaining)


def _landed_fingerprints(mailbox: Mailbox, op: Operation) -> dict[Fingerprint, int]:
    assert op.destination is not None and op.dest_uidnext is not None
    mailbox.open_folder(op.destination, readonly=True)
    try:
        counts: dict[Fingerprint, int] = {}
        for print_ in fingerprints(mailbox, mailbox.search(["ALL"], min_uid=op.dest_uidnext)).values():
            counts[print_] = counts.get(print_, 0) + 1
        return counts
    finally:
        mailbox.open_folder(op.folder, readonly=False)


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

    Re-planning redoes whatever is idempotent (flags, MOVE, deletion by UID).  What it
    can't see is a COPY that landed before the connection dropped: those copies are
    recorded (a copy action) or their originals removed (a COPY-based move), so the new
    plan neither copies them again nor leaves a duplicate behind.
    """
    notes: list[str] = []
    for item in pending:
        op = item.operation
        if op.dest_uidnext is not None and op.destination is not None:
            notes.append(_settle_copy(mailbox, journal, op))
        elif op.kind == "delete":
            notes.append(_finish_deletion(mailbox, journal, op))
        journal.done(item.op_id, {"recovered": True})
    return notes


def _settle_copy(mailbox: Mailbox, journal: Journal, op: Operation) -> str:
    status = mailbox.open_folder(op.folder, readonly=False)
    if status.uidvalidity != op.uidvalidity:
        return f"{op.folder}: UIDVALIDITY changed since the interrupted run; its {op.kind} is re-planned from scratch"
    missing = set(uncopied(mailbox, op))
    landed = tuple(uid for uid in op.uids if uid not in missing)
    if not landed:
        return f"{op.folder}: interrupted {op.kind} to {op.destination} had copied nothing; re-planned"
    if op.kind == "copy":
        journal.record_copies(op.folder, op.uidvalidity, [(uid, op.destination) for uid in landed])  # type: ignore[misc]
    else:
        mailbox.delete(landed)  # the copies are safe in the destination; finish the move
        if _leaves_originals(mailbox, op.kind):
            journal.record_left_flagged(op.folder, op.uidvalidity, landed)
    return f"{op.folder}: completed interrupted {op.kind} of {len(landed)} message(s) to {op.destination}"


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
