"""``mailrules diff OLD NEW``: what a change to the rules would do differently, message by message.

Both rule sets run through the same evaluator as ``plan`` (engine.evaluate_message) over
the same messages: a folder of ``.eml`` fixtures, a Maildir or an account's mailbox.  A
mailbox is only read: folders are opened with EXAMINE and every message is fetched once,
with ``BODY.PEEK`` and what either rule set needs, so not even ``\\Seen`` changes.

A side written ``git:REV:path`` is the rule file as it is at that git revision; its
includes and templates are read from the same revision.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TextIO

from mailrules.backends.base import FetchNeeds, Mailbox
from mailrules.engine import MessageOutcome, evaluate_message
from mailrules.errors import Problem, RuleFileError, UsageError
from mailrules.match import EvalContext
from mailrules.message import MessageView
from mailrules.model import Rule, RuleSet

GIT_PREFIX = "git:"


# ---------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Effect:
    """What one rule set does to one message, in the terms a reviewer compares."""

    rules: tuple[str, ...]
    folders: tuple[str, ...]
    flags_added: tuple[str, ...]
    flags_removed: tuple[str, ...]
    replies: tuple[str, ...]  # the rules that reply
    redirects: tuple[str, ...]  # addresses
    deleted: bool

    @classmethod
    def of(cls, outcome: MessageOutcome) -> Effect:
        return cls(rules=outcome.matched, folders=outcome.final_folders, flags_added=outcome.flag_adds,
                   flags_removed=outcome.flag_removes, replies=tuple(rule for rule, _ in outcome.replies),
                   redirects=tuple(address for _, address in outcome.redirects), deleted=outcome.deleted)

    def describe(self, folder: str) -> str:
        """e.g. ``Lists/Python +\\Seen (rule python-lists)``; ``stays in INBOX (no rule)``."""
        if self.deleted:
            where = "deleted" + (f", copied to {', '.join(self.folders)}" if self.folders else "")
        elif self.folders == (folder,):
            where = f"stays in {folder}"
        else:
            where = ", ".join(self.folders)
        parts = [where]
        parts += [f"+{flag}" for flag in self.flags_added] + [f"-{flag}" for flag in self.flags_removed]
        parts += ["reply"] * len(self.replies) + [f"redirect to {address}" for address in self.redirects]
        names = ", ".join(self.rules)
        rules = f"(rule{'s' if len(self.rules) > 1 else ''} {names})" if self.rules else "(no rule)"
        return " ".join(parts + [rules])

    def to_json(self) -> dict[str, object]:
        return {"rules": list(self.rules), "folders": list(self.folders), "flags_added": list(self.flags_added),
                "flags_removed": list(self.flags_removed), "replies": list(self.replies),
                "redirects": list(self.redirects), "deleted": self.deleted}


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Which message: where it is, and what a person recognises it by."""

    folder: str
    where: str  # "UID 12" in a mailbox, the file name among fixtures
    subject: str
    sender: str
    date: str
    message_id: str | None

    @classmethod
    def of(cls, message: MessageView, folder: str, where: str) -> MessageRef:
        senders = message.addresses("from")
        sender = senders[0].address if senders else (message.header_values("from") or [""])[0]
        moment = message.sent_date() or message.internaldate
        return cls(folder, where, message.subject, sender, moment.strftime("%Y-%m-%d %H:%M") if moment else "",
                   message.message_id)

    def to_json(self) -> dict[str, object]:
        return {"folder": self.folder, "where": self.where, "subject": self.subject, "from": self.sender,
                "date": self.date, "message_id": self.message_id}


@dataclass(frozen=True, slots=True)
class Change:
    message: MessageRef
    old: Effect
    new: Effect


@dataclass(frozen=True, slots=True)
class Group:
    """Messages that change the same way: same folder, same old and new effect."""

    folder: str
    old: Effect
    new: Effect
    messages: tuple[MessageRef, ...]

    @property
    def heading(self) -> str:
        return f"{self.old.describe(self.folder)} → {self.new.describe(self.folder)}"


@dataclass(frozen=True, slots=True)
class DiffResult:
    examined: int
    changes: tuple[Change, ...]
    warnings: tuple[str, ...] = ()

    @property
    def groups(self) -> tuple[Group, ...]:
        by_key: dict[tuple[str, Effect, Effect], list[MessageRef]] = {}
        for change in self.changes:
            by_key.setdefault((change.message.folder, change.old, change.new), []).append(change.message)
        groups = (Group(folder, old, new, tuple(refs)) for (folder, old, new), refs in by_key.items())
        return tuple(sorted(groups, key=lambda group: (-len(group.messages), group.folder, group.heading)))


# ---------------------------------------------------------------- evaluating


def compare(old: Sequence[Rule], new: Sequence[Rule], message: MessageView, *, folder: str, ctx: EvalContext,
            delimiter: str | None) -> tuple[Effect, Effect]:
    """Both rule sets' effect on one message, by the planner's own evaluator and its \\Deleted rule."""
    from mailrules.scan import asks_about_deleted

    if any(flag.lower() == "\\deleted" for flag in message.flags):
        # Mail clients hide a message on its way out; only rules asking about it see it (as in plan).
        old = [rule for rule in old if asks_about_deleted(rule.when)]
        new = [rule for rule in new if asks_about_deleted(rule.when)]
    outcomes = (evaluate_message(rules, message, folder=folder, ctx=ctx, delimiter=delimiter) for rules in (old, new))
    before, after = (Effect.of(outcome) for outcome in outcomes)
    return before, after


def diff_fixtures(old: RuleSet, new: RuleSet, directory: str | os.PathLike[str], now: datetime) -> DiffResult:
    """Every ``.eml`` under ``directory``: those at the top are in INBOX, those in ``a/b/`` in folder ``a/b``."""
    from mailrules.explain import read_message_file

    root = Path(directory)
    if not root.is_dir():
        raise UsageError(f"--fixtures {directory}: not a directory")
    ctx = EvalContext(now=now)
    changes: list[Change] = []
    examined = 0
    for path in sorted(root.rglob("*.eml")):
        folder = "/".join(path.relative_to(root).parent.parts) or "INBOX"
        message = MessageView.from_bytes(read_message_file(path))
        examined += 1
        before, after = compare(old.enabled_rules, new.enabled_rules, message, folder=folder, ctx=ctx, delimiter="/")
        if before != after:
            changes.append(Change(MessageRef.of(message, folder, str(path.relative_to(root))), before, after))
    return DiffResult(examined, tuple(changes))


def diff_mailbox(old: RuleSet, new: RuleSet, mailbox: Mailbox, now: datetime) -> DiffResult:
    """Every message of every folder either rule set reads, fetched once for both."""
    from mailrules.planner import assign_folders, resolve_rule_folders

    existing = mailbox.list_folders()
    warnings: list[str] = []
    old_rules = assign_folders(resolve_rule_folders(old.enabled_rules, mailbox), existing, mailbox.delimiter, [])
    new_rules = assign_folders(resolve_rule_folders(new.enabled_rules, mailbox), existing, mailbox.delimiter,
                               warnings)
    ctx = EvalContext(now=now)
    changes: list[Change] = []
    examined = 0
    for folder in dict.fromkeys([*old_rules, *new_rules]):
        before_rules, after_rules = old_rules.get(folder, []), new_rules.get(folder, [])
        for uid, message in _read_folder(mailbox, folder, [*before_rules, *after_rules]):
            examined += 1
            before, after = compare(before_rules, after_rules, message, folder=folder, ctx=ctx,
                                    delimiter=mailbox.delimiter)
            warnings.extend(f"{folder} UID {uid}: {warning}" for warning in message.warnings)
            if before != after:
                changes.append(Change(MessageRef.of(message, folder, f"UID {uid}"), before, after))
    return DiffResult(examined, tuple(changes), tuple(dict.fromkeys(warnings)))


def _read_folder(mailbox: Mailbox, folder: str, rules: Iterable[Rule]) -> Iterator[tuple[int, MessageView]]:
    from mailrules.query import EVERYTHING
    from mailrules.scan import SUMMARY_NEEDS, rule_needs

    status = mailbox.open_folder(folder, readonly=True)
    if status.exists == 0:
        return iter(())
    needs: FetchNeeds = SUMMARY_NEEDS
    for rule in rules:
        needs |= rule_needs(rule)
    return mailbox.fetch(mailbox.search(EVERYTHING), needs)


# ---------------------------------------------------------------- rule sets, also from git


def load_side(spec: str, stack: ExitStack) -> RuleSet:
    """A rule file, or ``git:REV:path``: the file at that revision, with that revision's includes."""
    from mailrules.loader import load_ruleset

    if not spec.startswith(GIT_PREFIX):
        return load_ruleset(spec).ruleset
    rev, sep, path = spec[len(GIT_PREFIX):].partition(":")
    if not sep or not rev or not path:
        raise UsageError(f"{spec!r}: a rule file at a git revision is written git:REV:path, e.g. git:main:rules.yaml")
    tree = stack.enter_context(tempfile.TemporaryDirectory(prefix="mailrules-diff-"))
    prefix = _git(["rev-parse", "--show-prefix"], spec).decode().strip()
    _extract_revision(rev, tree, spec)
    relative = os.path.normpath(os.path.join(prefix, path))
    local = os.path.join(tree, relative)
    try:
        return load_ruleset(local).ruleset
    except RuleFileError as exc:
        raise RuleFileError([_shown_at_revision(problem, tree, rev) for problem in exc.problems]) from None
    except UsageError:
        raise UsageError(f"{spec}: no such file at revision {rev}") from None


def _extract_revision(rev: str, into: str, spec: str) -> None:
    """The whole tree at ``rev``, so includes and templates resolve the way they do in that checkout."""
    archive = _git(["archive", "--format=tar", "--", f"{rev}^{{tree}}"], spec)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def _git(args: list[str], spec: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise UsageError(f"{spec}: reading a rule file at a git revision needs git installed") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise UsageError(f"{spec}: git {args[0]} failed: {reason[-1] if reason else done.returncode}")
    return done.stdout


def _shown_at_revision(problem: Problem, tree: str, rev: str) -> Problem:
    file = problem.loc.file
    if file.startswith(tree + os.sep):
        file = f"{GIT_PREFIX}{rev}:{os.path.relpath(file, tree)}"
    return replace(problem, loc=replace(problem.loc, file=file), message=problem.message.replace(tree + os.sep, ""))


# ---------------------------------------------------------------- output


def render_text(result: DiffResult) -> str:
    lines = [f"{_count(len(result.changes))} of {result.examined} change:"]
    for group in result.groups:
        lines += ["", f"{group.folder}: {group.heading}  [{_count(len(group.messages))}]"]
        lines += [f"  {ref.where}  {ref.date}  {ref.sender}  {ref.subject!r}" for ref in group.messages]
    return "\n".join(lines)


def render_markdown(result: DiffResult) -> str:
    lines = [f"### mailrules diff: {_count(len(result.changes))} of {result.examined} change"]
    for group in result.groups:
        lines += ["", f"#### {_md(group.folder)}: {_md(group.heading)} ({_count(len(group.messages))})", "",
                  "| message | date | from | subject |", "|---|---|---|---|"]
        lines += [f"| {_md(ref.where)} | {_md(ref.date)} | {_md(ref.sender)} | {_md(ref.subject)} |"
                  for ref in group.messages]
    return "\n".join(lines)


def to_json(result: DiffResult) -> str:
    groups = [{"folder": group.folder, "old": group.old.to_json(), "new": group.new.to_json(),
               "count": len(group.messages), "messages": [ref.to_json() for ref in group.messages]}
              for group in result.groups]
    return json.dumps({"examined": result.examined, "changed": len(result.changes), "groups": groups,
                       "warnings": list(result.warnings)}, indent=2, ensure_ascii=False)


def _count(number: int) -> str:
    return f"{number} message{'s' if number != 1 else ''}"


_MARKDOWN_SPECIAL = str.maketrans({char: f"\\{char}" for char in "\\`*_[]<>|#"} | {"\n": " ", "\r": " "})


def _md(text: str) -> str:
    # Subjects and senders are untrusted: on a pull request they must not become links, markup or columns.
    return text.translate(_MARKDOWN_SPECIAL)


def write_diff(result: DiffResult, out: TextIO, *, as_json: bool, fmt: str) -> int:
    """Print only what differs; exit 1 when something does, 0 (and nothing printed) when nothing does."""
    if not result.changes:
        return 0
    if as_json:
        print(to_json(result), file=out)
    else:
        print(render_markdown(result) if fmt == "markdown" else render_text(result), file=out)
    return 1


@dataclass(frozen=True, slots=True)
class DiffRequest:
    old: str
    new: str
    now: datetime
    fixtures: str | None = None
    maildir: str | None = None
    account: str | None = None
    accounts_file: str | None = None
    as_json: bool = False
    fmt: str = "text"
    verbose: int = 0


def run_diff(request: DiffRequest, out: TextIO) -> int:
    import sys

    with ExitStack() as stack:
        old, new = load_side(request.old, stack), load_side(request.new, stack)
        if request.fixtures is not None:
            result = diff_fixtures(old, new, request.fixtures, request.now)
        else:
            mailbox = _open(request, new)
            stack.callback(mailbox.close)
            result = diff_mailbox(old, new, mailbox, request.now)
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return write_diff(result, out, as_json=request.as_json, fmt=request.fmt)


def _open(request: DiffRequest, new: RuleSet) -> Mailbox:
    from mailrules.accounts import Account, load_accounts
    from mailrules.backends.open import open_mailbox

    if request.maildir is not None:
        path = Path(request.maildir).resolve()
        account = Account(name=f"maildir:{path}", imap=None, maildir=str(path), addresses=(), smtp=None)
    else:
        account = load_accounts(request.accounts_file).pick(request.account or new.account)
    return open_mailbox(account, request.verbose)
