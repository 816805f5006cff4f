"""What the rules do to one message file, and why: ``mailrules explain`` and ``mailrules test``.

Offline there is no account, so replies are checked against every RFC 3834 guard except
"addressed to one of the account's addresses", unless addresses are given; ``once_per``
needs the run history and does not apply here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from mailrules.engine import MessageOutcome, evaluate_message
from mailrules.errors import UsageError
from mailrules.match import EvalContext, Trace
from mailrules.message import MessageView
from mailrules.model import Rule, RuleSet, canonical_flag
from mailrules.reply import (Identity, ReplyTemplateError, redirect_skip_reason, render_reply, reply_skip_reason,
                             template_root, template_variables, unsendable_reason)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SendVerdict:
    kind: str  # reply | redirect
    rule: str
    skip_reason: str | None
    subject: str = ""
    body: str = ""
    recipient: str | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    message: MessageView
    folder: str
    outcome: MessageOutcome
    sends: tuple[SendVerdict, ...]

    @property
    def replies_sent(self) -> int:
        return sum(1 for send in self.sends if send.kind == "reply" and send.skip_reason is None)

    @property
    def redirects_sent(self) -> list[str]:
        return [send.recipient or "" for send in self.sends if send.kind == "redirect" and send.skip_reason is None]

    def outcome_json(self) -> dict[str, object]:
        return self.outcome.to_json() | {"replies": self.replies_sent, "redirects": self.redirects_sent}


def read_message_file(path: str | Path) -> bytes:
    file = Path(path)
    try:
        if file.stat().st_size > MAX_MESSAGE_BYTES:
            raise UsageError(f"{file}: larger than {MAX_MESSAGE_BYTES // 2**20} MB; not a message file?")
        return file.read_bytes()
    except OSError as exc:
        raise UsageError(f"can't read message file {file}: {exc.strerror or exc}") from None


def explain_message(ruleset: RuleSet, raw: bytes, *, folder: str, flags: list[str], now: datetime,
                    identity: Identity | None = None) -> Explanation:
    message = MessageView.from_bytes(raw, flags=[canonical_flag(flag) for flag in flags])
    outcome = evaluate_message(ruleset.rules, message, folder=folder, ctx=EvalContext(now=now), explain=True)
    rules = {rule.name: rule for rule in ruleset.rules}
    return Explanation(message, folder, outcome, _sends(outcome, message, rules, identity or Identity("offline", ())))


def _sends(outcome: MessageOutcome, message: MessageView, rules: dict[str, Rule],
           identity: Identity) -> tuple[SendVerdict, ...]:
    verdicts: list[SendVerdict] = []
    for rule_name, reply in outcome.replies:
        checked = reply if identity.addresses else replace(reply, require_recipient=False)
        reason = reply_skip_reason(message, checked, identity)
        subject = body = ""
        if reason is None:
            try:
                subject, body = render_reply(reply, template_variables(message, rules[rule_name], identity),
                                             template_root(rules[rule_name]))
            except ReplyTemplateError as exc:
                reason = f"the template failed: {exc}"
        reason = reason or unsendable_reason(message, reply, identity)
        verdicts.append(SendVerdict("reply", rule_name, reason, subject, body))
    for rule_name, address in outcome.redirects:
        verdicts.append(SendVerdict("redirect", rule_name, redirect_skip_reason(message, identity), recipient=address))
    return tuple(verdicts)


def explain_file(rules_path: str, message_path: str, *, folder: str, flags: list[str], now: datetime,
                 as_json: bool, addresses: tuple[str, ...] = ()) -> str:
    from mailrules.loader import load_ruleset

    ruleset = load_ruleset(rules_path).ruleset
    explanation = explain_message(ruleset, read_message_file(message_path), folder=folder, flags=flags, now=now,
                                  identity=Identity("offline", addresses))
    if as_json:
        return json.dumps(explanation_json(explanation, ruleset), indent=2, ensure_ascii=False)
    return render_explanation(explanation, ruleset, message_path)


def explanation_json(explanation: Explanation, ruleset: RuleSet) -> dict[str, object]:
    traces = dict(explanation.outcome.traces)
    return {
        "matched": list(explanation.outcome.matched),
        "outcome": explanation.outcome_json(),
        "rules": [
            {"name": rule.name, "status": _status(rule, explanation, traces),
             "why": traces[rule.name].lines() if rule.name in traces else []}
            for rule in ruleset.rules
        ],
        "sends": [{"kind": s.kind, "rule": s.rule, "skipped": s.skip_reason, "subject": s.subject,
                   "recipient": s.recipient} for s in explanation.sends],
        "warnings": list(explanation.message.warnings),
    }


def _status(rule: Rule, explanation: Explanation, traces: Mapping[str, Trace]) -> str:
    from mailrules.engine import rule_applies

    if not rule.enabled:
        return "disabled"
    if not rule_applies(rule, explanation.folder, "/"):
        return "not for this folder"
    if rule.name in explanation.outcome.matched:
        return "matched"
    return "not matched" if rule.name in traces else "not reached"


def render_explanation(explanation: Explanation, ruleset: RuleSet, message_path: str) -> str:
    message, outcome = explanation.message, explanation.outcome
    senders = message.header_values("From")
    lines = [f"{message_path}", f"  From:    {senders[0] if senders else '(none)'}", f"  Subject: {message.subject}",
             f"  Folder:  {explanation.folder}   flags: {' '.join(sorted(message.flags)) or '(none)'}", ""]
    traces = dict(outcome.traces)
    for rule in ruleset.rules:
        status = _status(rule, explanation, traces)
        mark = {"matched": "MATCH", "not matched": "no"}.get(status, "-")
        lines.append(f"{mark:>5}  {rule.name}" + ("" if status in ("matched", "not matched") else f"  ({status})"))
        if rule.name in traces:
            lines += ["         " + line for line in traces[rule.name].lines()]
    lines += ["", "Outcome:", f"  folders:   {', '.join(outcome.final_folders) or '(deleted)'}",
              f"  flags:     {' '.join(outcome.final_flags) or '(none)'}"]
    lines += _send_lines(explanation)
    lines += [f"warning: {warning}" for warning in message.warnings]
    return "\n".join(lines)


def _send_lines(explanation: Explanation) -> list[str]:
    lines = [f"  replies:   {explanation.replies_sent}", f"  redirects: {', '.join(explanation.redirects_sent) or '(none)'}"]
    for send in explanation.sends:
        if send.skip_reason:
            lines.append(f"  skipped {send.kind} (rule {send.rule}): {send.skip_reason}")
        elif send.kind == "reply":
            lines.append(f"  reply (rule {send.rule}), Subject: {send.subject}")
            lines += [f"      | {line}" for line in send.body.splitlines()[:8]]
    return lines
