"""Text and JSON renderings of plans and run reports (pure: values in, strings out)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mailrules.plan import FolderPlan, Plan, Send, Transfer
from mailrules.uidset import uid_ranges

if TYPE_CHECKING:
    from mailrules.errors import Problem
    from mailrules.execute import RunReport
    from mailrules.state import JournalEntry, RunRecord

UIDS_SHOWN = 60  # characters of a UID set shown in text; --json has all of them
SENDER_WIDTH = 40
_ANGLE_ADDRESS = re.compile(r"^(?P<name>.*?)\s*<(?P<address>[^<>]*)>$")


def render_plan(plan: Plan) -> str:
    """What ``mailrules plan`` prints: the plan, ending in what a run would change."""
    return "\n".join(_plan_lines(plan) + ["", _would_change(plan)])


def render_run_start(plan: Plan) -> str:
    """What ``mailrules run`` prints before it starts: the same plan, ending in what it now changes."""
    return "\n".join(_plan_lines(plan) + ["", _changing(plan)])


def _plan_lines(plan: Plan) -> list[str]:
    scope = "new messages only" if plan.new_only else "full scan"
    lines = [f"Plan for {plan.account} at {plan.now:%Y-%m-%d %H:%M %Z} ({scope})", ""]
    lines += _rules_section(plan)
    for folder in plan.folders:
        lines += _folder_section(folder, _Removal.of(plan))
    if plan.create_folders:
        lines += ["", "Folders to create: " + ", ".join(plan.create_folders)]
    if plan.warnings:
        lines += ["", "Warnings:"] + [f"  {warning}" for warning in plan.warnings]
    return lines


def _rules_section(plan: Plan) -> list[str]:
    if not plan.rules:
        return ["No rule matched any message."]
    width = max(len(summary.rule) for summary in plan.rules)
    lines = ["Rules:"]
    for summary in plan.rules:
        noun = "message" if summary.matched == 1 else "messages"
        lines.append(f"  {summary.rule:<{width}}  {summary.matched} {noun}")
        for example in summary.examples:
            sender = clip_sender(example.sender, SENDER_WIDTH)
            lines.append(f"  {'':<{width}}    {example.date}  {sender:<{SENDER_WIDTH}}  {example.subject}")
        if summary.matched > len(summary.examples):
            lines.append(f"  {'':<{width}}    … and {summary.matched - len(summary.examples)} more")
    return lines


def clip_sender(sender: str, width: int) -> str:
    """A From line cut to ``width`` at a word or address boundary, never inside the address.

    The address says who it is, so the display name gives way first.

    >>> clip_sender("ACME Billing Department <billing@acme-hosting.example>", 40)
    'ACME… <billing@acme-hosting.example>'
    >>> clip_sender("Someone With A Long Name <a-very-long-address@subdomain.example.org>", 40)
    '<a-very-long-address@subdomain.example…>'
    >>> clip_sender("Bob <bob@example.net>", 40)
    'Bob <bob@example.net>'
    """
    if len(sender) <= width:
        return sender
    found = _ANGLE_ADDRESS.match(sender)
    if found is None:  # a bare address, or a group name
        return clip_words(sender, width, breaks=" @.-_+")
    address = f"<{found['address']}>"
    if len(address) + 2 > width:
        return "<" + clip_words(found["address"], width - 2, breaks="@.-_+") + ">"
    name = clip_words(found["name"], width - len(address) - 1, keep_one=False)
    return f"{name} {address}" if name else address


def clip_words(text: str, width: int, *, breaks: str = " ", keep_one: bool = True) -> str:
    """``text`` cut to ``width`` at the last boundary (a character of ``breaks``), ending in ``…``.

    A piece with no boundary at all is cut where it must (``keep_one``) or dropped.

    >>> clip_words("Invoice 2026-1142 for November", 20)
    'Invoice 2026-1142…'
    >>> clip_words("billing@acme-hosting.example", 20, breaks="@.-")
    'billing@acme-…'
    """
    if len(text) <= width:
        return text
    room = text[: max(width - 1, 0)]
    if text[len(room)] in breaks:  # the room ends where a word does
        kept = room
    else:
        cut = max(room.rfind(mark) for mark in breaks)
        if cut <= 0:
            return room + "…" if keep_one and room else ""
        kept = room[:cut] if room[cut] == " " else room[: cut + 1]
    return kept.rstrip() + "…"


@dataclass(frozen=True, slots=True)
class _Removal:
    """How the plan's lines name removals, so the plan says what the run will really do."""

    delete: str = "delete (UID EXPUNGE)"
    move_suffix: str = ""

    @classmethod
    def of(cls, plan: Plan) -> _Removal:
        if plan.expunges_by_uid:
            return cls()
        left = "left flagged \\Deleted: this server can't expunge only these"
        return cls(f"delete ({left})", "" if plan.moves_in_one_step else f" (copy; original {left})")


def _folder_section(folder: FolderPlan, removal: _Removal = _Removal()) -> list[str]:
    header = (f"{folder.folder} (UIDVALIDITY {folder.uidvalidity}, {folder.messages} messages, "
              f"{folder.candidates} examined)")
    lines = ["", header]
    if not folder.has_work and not folder.sends and not folder.skipped:
        return lines + ["  nothing to do"]
    for change in folder.flag_changes:
        sign = "+" if change.add else "-"
        lines.append(_op_line(f"flag {sign}{' '.join(change.flags)}", change.uids))
    lines += [_op_line(f"copy to {t.destination}", t.uids) for t in folder.copies]
    for send in folder.sends:
        lines += _send_lines(send)
    lines += [_op_line(_transfer_label(t) + removal.move_suffix, t.uids) for t in folder.moves]
    if folder.deletions:
        lines.append(_op_line(removal.delete, folder.deletions))
    for skipped in folder.skipped:
        lines += [_op_line(f"skip {skipped.action}", skipped.uids), f"      because {skipped.reason}"]
    return lines


def _transfer_label(transfer: Transfer) -> str:
    return f"{'trash' if transfer.kind == 'trash' else 'move'} to {transfer.destination}"


def _op_line(label: str, uids: tuple[int, ...]) -> str:
    shown = ",".join(uid_ranges(uids))
    if len(shown) > UIDS_SHOWN:
        shown = shown[:UIDS_SHOWN].rsplit(",", 1)[0] + ",…"
    noun = "message" if len(uids) == 1 else "messages"
    return f"  {label:<40} {len(uids):>6} {noun:<8}  UID {shown}"


def _send_lines(send: Send) -> list[str]:
    if send.skip_reason is not None:
        to = f" to {send.recipient}" if send.recipient and send.preview else ""
        lines = [f"  skip {send.kind}{to} for UID {send.uid} (rule {send.rule}): {send.skip_reason}"]
        if not send.preview:
            return lines
    else:
        lines = [f"  {send.kind} to {send.recipient} for UID {send.uid} (rule {send.rule})"]
    if send.subject:
        lines.append(f"      Subject: {send.subject}")
    lines += [f"      | {line}" for line in send.preview.splitlines()]
    return lines


def _would_change(plan: Plan) -> str:
    if not plan.has_work:
        return "Nothing to do."
    return f"Would change {_changed(plan)} message(s); `mailrules run` does exactly this."


def _changing(plan: Plan) -> str:
    return f"Changing {_changed(plan)} message(s):" if plan.has_work else "Nothing to do."


def _changed(plan: Plan) -> int:
    return len({uid for f in plan.folders for uid in _touched(f)})


def _touched(folder: FolderPlan) -> set[tuple[str, int]]:
    uids: set[int] = set(folder.deletions)
    for change in folder.flag_changes:
        uids.update(change.uids)
    for transfer in folder.copies + folder.moves:
        uids.update(transfer.uids)
    uids.update(send.uid for send in folder.pending_sends)
    return {(folder.folder, uid) for uid in uids}  # type: ignore[misc]


def plan_to_json(plan: Plan) -> str:
    data = asdict(plan)
    data["now"] = plan.now.isoformat()
    for folder in data["folders"]:
        for send in folder["sends"]:
            send.pop("reply", None)
    data["has_work"] = plan.has_work
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def render_report(report: RunReport) -> str:
    lines = [f"Created folder {name}" for name in report.created]
    totals: dict[str, int] = {}
    for folder in report.folders:
        counts = {k: v for k, v in asdict(folder).items() if type(v) is int and v}
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
        if counts:
            lines.append(f"{folder.folder:<30} " + ", ".join(f"{_count_label(key)} {value}" for key, value in counts.items()))
    lines += [f"failed: {failure}" for failure in report.failures]
    lines += [f"note: {notice}" for notice in report.notices]
    lines += [f"warning: {warning}" for warning in report.warnings]
    summary = ", ".join(f"{_count_label(key)} {value}" for key, value in totals.items()) or "nothing changed"
    lines.append(f"Done: {summary}.")
    return "\n".join(lines)


def render_summary(report: RunReport) -> str | None:
    """One line for cron (``run -q``): what changed, or None when nothing did.

    >>> from mailrules.execute import FolderReport, RunReport
    >>> render_summary(RunReport(folders=[FolderReport("INBOX", moved=3, flagged=1), FolderReport("Lists", moved=2)]))
    'flagged 1, moved 5 in INBOX, Lists.'
    >>> render_summary(RunReport(folders=[FolderReport("INBOX", moved=1)], created=["Archive"]))
    'moved 1 in INBOX; created Archive.'
    >>> render_summary(RunReport(folders=[FolderReport("INBOX")])) is None
    True
    """
    totals: dict[str, int] = {}
    changed: list[str] = []
    for folder in report.folders:
        counts = {k: v for k, v in asdict(folder).items() if type(v) is int and v}
        if counts:
            changed.append(folder.folder)
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
    parts = []
    if totals:
        parts.append(", ".join(f"{key} {value}" for key, value in totals.items()) + " in " + _few(changed, "folders"))
    if report.created:
        parts.append("created " + _few(report.created, "folders"))
    if report.failures:
        parts.append(f"{len(report.failures)} send{'s' if len(report.failures) != 1 else ''} failed")
    return "; ".join(parts) + "." if parts else None


def _few(names: list[str], noun: str, shown: int = 3) -> str:
    """``a, b, c`` for a few names, ``12 folders`` for many: a summary line stays one line."""
    return ", ".join(names) if len(names) <= shown else f"{len(names)} {noun}"


# What a server without UIDPLUS leaves behind is not a move or a deletion: say what it is.
_COUNT_LABELS = {"copied_left_flagged": "copied and left flagged", "left_flagged": "left flagged \\Deleted"}


def _count_label(key: str) -> str:
    return _COUNT_LABELS.get(key, key)


def report_to_json(report: RunReport) -> dict[str, Any]:
    data = asdict(report) | {"failures": report.failures}
    for folder in data["folders"]:
        folder["held"] = sorted(folder["held"])
    return data


# ---------------------------------------------------------------- problems (validate, test)


def problem_json(problem: Problem) -> dict[str, Any]:
    """A rule- or test-file finding; ``line``/``col`` are 1-based, 0 when unknown."""
    return {"file": problem.loc.file, "line": problem.loc.line, "col": problem.loc.col,
            "severity": problem.severity, "message": problem.message}


# ---------------------------------------------------------------- history


def operation_label(entry: JournalEntry) -> str:
    """``move to Archive``, ``flag +\\Seen``, ``reply (rule away)``: one journalled operation in words."""
    if entry.kind in ("flag", "unflag"):
        sign = "+" if entry.kind == "flag" else "-"
        return f"flag {sign}{' '.join(entry.flags)}".rstrip()
    if entry.kind in ("copy", "move", "trash"):
        return f"{entry.kind} to {entry.destination}"
    if entry.kind in ("reply", "redirect"):
        return f"{entry.kind} (rule {entry.rule})" if entry.rule else entry.kind
    return entry.kind


def folder_totals(entries: list[JournalEntry]) -> list[dict[str, Any]]:
    """Messages per folder, operation and outcome, in the order the run first did each."""
    totals: dict[tuple[str, str, str], int] = {}
    for entry in entries:
        key = (entry.folder, operation_label(entry), entry.status)
        totals[key] = totals.get(key, 0) + len(entry.uids)
    return [{"folder": folder, "operation": label, "status": status, "messages": count}
            for (folder, label, status), count in totals.items()]


def run_json(run: RunRecord, entries: list[JournalEntry], *, operations: bool) -> dict[str, Any]:
    """A run in ``history --json``; with ``operations`` (``history RUN --json``) every operation too."""
    summary = run.summary or {}
    data: dict[str, Any] = {
        "id": run.id, "account": run.account, "mode": run.mode, "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "operation_count": run.operations,
        "rules": dict(summary.get("rules", {})),
        "folders": folder_totals(entries),
        "error": summary.get("error"), "exit_code": summary.get("exit_code"),
        "failures": list(summary.get("failures", [])),
    }
    if operations:
        data["operations"] = [
            {"id": e.id, "folder": e.folder, "rule": e.rule, "kind": e.kind, "operation": operation_label(e),
             "uids": list(e.uids), "destination": e.destination, "flags": list(e.flags), "status": e.status,
             "error": e.error, "at": e.created_at.isoformat()}
            for e in entries
        ]
    return data


def render_history(runs: list[tuple[RunRecord, list[JournalEntry]]]) -> str:
    if not runs:
        return "no runs recorded"
    lines: list[str] = []
    for run, entries in runs:
        lines.append(f"#{run.id:<5} {run.started_at:%Y-%m-%d %H:%M:%S}  {run.account:<24} {run.mode:<7} "
                     f"{_run_status(run):<10} {run.operations} operation(s)")
        lines += ["        " + line for line in _run_details(run, entries)]
    lines += ["", f"`mailrules history {runs[0][0].id}` lists that run's operations, and why it failed."]
    return "\n".join(lines)


def render_run(run: RunRecord, entries: list[JournalEntry]) -> str:
    finished = f", finished {run.finished_at:%H:%M:%S}" if run.finished_at else ""
    lines = [f"Run #{run.id} of {run.account} ({run.mode}): {_run_status(run)}",
             f"  started {run.started_at:%Y-%m-%d %H:%M:%S} UTC{finished}"]
    lines += ["  " + line for line in _run_details(run, entries, per_folder=False)]
    if entries:
        lines += ["", "  Operations:"]
    for entry in entries:
        shown = ",".join(uid_ranges(entry.uids))
        if len(shown) > UIDS_SHOWN:
            shown = shown[:UIDS_SHOWN].rsplit(",", 1)[0] + ",…"
        noun = "message" if len(entry.uids) == 1 else "messages"
        lines.append(f"    {_STATUS_WORDS.get(entry.status, entry.status):<10} {entry.folder:<20} "
                     f"{operation_label(entry):<36} {len(entry.uids):>5} {noun:<8}  UID {shown}")
        if entry.error:
            lines.append(f"               {entry.error}")
    if not entries:
        lines.append("  No operations: there was nothing to do." if run.status == "ok" else "  No operations.")
    return "\n".join(lines)


_STATUS_WORDS = {"intent": "unfinished"}


def _run_status(run: RunRecord) -> str:
    # A run that never finished is still going, or was cut off; the next run settles it.
    return run.status if run.finished_at is not None else "unfinished"


def _run_details(run: RunRecord, entries: list[JournalEntry], *, per_folder: bool = True) -> list[str]:
    summary = run.summary or {}
    lines = []
    rules = {name: count for name, count in dict(summary.get("rules", {})).items() if count}
    if rules:
        lines.append("rules: " + ", ".join(f"{name} {count}" for name, count in rules.items()))
    if per_folder:
        by_folder: dict[str, list[str]] = {}
        for total in folder_totals(entries):
            failed = "" if total["status"] == "done" else f" ({_STATUS_WORDS.get(total['status'], total['status'])})"
            by_folder.setdefault(total["folder"], []).append(f"{total['operation']} {total['messages']}{failed}")
        lines += [f"{folder}: " + ", ".join(parts) for folder, parts in by_folder.items()]
    lines += [f"failed: {failure}" for failure in summary.get("failures", [])]
    lines += [f"warning: {warning}" for warning in summary.get("warnings", [])]
    if summary.get("error"):
        code = f" (exit {summary['exit_code']})" if summary.get("exit_code") is not None else ""
        lines.append(f"failed: {summary['error']}{code}")
    elif run.finished_at is None:
        lines.append("unfinished: still running, or cut off; the next run settles what it left")
    return lines
