"""Text and JSON renderings of plans and run reports (pure: values in, strings out)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from mailrules.plan import FolderPlan, Plan, Send, Transfer
from mailrules.uidset import uid_ranges

if TYPE_CHECKING:
    from mailrules.execute import RunReport

UIDS_SHOWN = 60  # characters of a UID set shown in text; --json has all of them


def render_plan(plan: Plan, *, running: bool = False) -> str:
    scope = "new messages only" if plan.new_only else "full scan"
    lines = [f"Plan for {plan.account} at {plan.now:%Y-%m-%d %H:%M %Z} ({scope})", ""]
    lines += _rules_section(plan)
    for folder in plan.folders:
        lines += _folder_section(folder)
    if plan.create_folders:
        lines += ["", "Folders to create: " + ", ".join(plan.create_folders)]
    if plan.warnings:
        lines += ["", "Warnings:"] + [f"  {warning}" for warning in plan.warnings]
    lines += ["", _verdict(plan, running)]
    return "\n".join(lines)


def _rules_section(plan: Plan) -> list[str]:
    if not plan.rules:
        return ["No rule matched any message."]
    width = max(len(summary.rule) for summary in plan.rules)
    lines = ["Rules:"]
    for summary in plan.rules:
        noun = "message" if summary.matched == 1 else "messages"
        lines.append(f"  {summary.rule:<{width}}  {summary.matched} {noun}")
        for example in summary.examples:
            lines.append(f"  {'':<{width}}    {example.date}  {example.sender[:40]:<40}  {example.subject}")
    return lines


def _folder_section(folder: FolderPlan) -> list[str]:
    header = (f"{folder.folder} (UIDVALIDITY {folder.uidvalidity}, {folder.messages} messages, "
              f"{folder.candidates} examined)")
    lines = ["", header]
    if not folder.has_work and not folder.sends:
        return lines + ["  nothing to do"]
    for change in folder.flag_changes:
        sign = "+" if change.add else "-"
        lines.append(_op_line(f"flag {sign}{' '.join(change.flags)}", change.uids))
    lines += [_op_line(f"copy to {t.destination}", t.uids) for t in folder.copies]
    for send in folder.sends:
        lines += _send_lines(send)
    lines += [_op_line(_transfer_label(t), t.uids) for t in folder.moves]
    if folder.deletions:
        lines.append(_op_line("delete (UID EXPUNGE)", folder.deletions))
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
        return [f"  skip {send.kind} for UID {send.uid} (rule {send.rule}): {send.skip_reason}"]
    lines = [f"  {send.kind} to {send.recipient} for UID {send.uid} (rule {send.rule})"]
    if send.subject:
        lines.append(f"      Subject: {send.subject}")
    lines += [f"      | {line}" for line in send.preview.splitlines()]
    return lines


def _verdict(plan: Plan, running: bool) -> str:
    if not plan.has_work:
        return "Nothing to do."
    changed = len({uid for f in plan.folders for uid in _touched(f)})
    if running:
        return f"Changing {changed} message(s):"
    return f"Would change {changed} message(s); `mailrules run` does exactly this."


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
    summary = ", ".join(f"{_count_label(key)} {value}" for key, value in totals.items()) or "nothing changed"
    lines.append(f"Done: {summary}.")
    return "\n".join(lines)


# What a server without UIDPLUS leaves behind is not a move or a deletion: say what it is.
_COUNT_LABELS = {"copied_left_flagged": "copied and left flagged", "left_flagged": "left flagged \\Deleted"}


def _count_label(key: str) -> str:
    return _COUNT_LABELS.get(key, key)


def report_to_json(report: RunReport) -> dict[str, Any]:
    data = asdict(report) | {"failures": report.failures}
    for folder in data["folders"]:
        folder["held"] = sorted(folder["held"])
    return data
