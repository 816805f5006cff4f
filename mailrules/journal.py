"""The state database as the planner reads it and the executor writes it, for one account.

state.py knows tables and rows; this module knows what a plan asks of them (what was
already applied, where the last run stopped) and what a run records as it goes (intents,
results, copies, sends), so neither the planner nor the executor speaks SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailrules.plan import Plan
    from mailrules.state import State

# The journal's mark for a message this account flagged \Deleted but could not expunge.
LEFT_FLAGGED = "left-flagged"


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
