"""Rule test files (the ``*.test.yaml`` a team keeps next to its rules and runs in CI).

A test file names the rule file under test and lists cases: a message (an ``.eml``
file or inline headers and body), the folder and flags it starts with, an optional
clock, and the expected outcome.  Loading checks everything that can be checked
without running the rules, so ``mailrules test`` fails with ``file:line:col`` problems
before any case runs.  Paths are relative to the test file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from typing import Any

from mailrules.errors import Loc, Problem, RuleFileError, UsageError
from mailrules.loader import load_yaml_document
from mailrules.model import NOWHERE, canonical_flag
from mailrules.parse import flag_problem, folder_problem
from mailrules.yamlsrc import LocIndex, Path

_HEADER_NAME_CHARS = {chr(code) for code in range(33, 127)} - {":"}


@dataclass(frozen=True, slots=True)
class ExpectedReply:
    """What one sent reply must look like; ``None`` (or no text) means "not checked"."""

    to: str | None = None
    subject: str | None = None
    body_contains: tuple[str, ...] = ()
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Expect:
    """The outcome a case checks; ``None`` means "not checked"."""

    rules: tuple[str, ...] | None = None
    folders: tuple[str, ...] | None = None
    flags: tuple[str, ...] | None = None  # canonical, as in model.canonical_flag
    replies: int | None = None
    redirects: tuple[str, ...] | None = None
    reply: tuple[ExpectedReply, ...] | None = None
    rule_locs: tuple[Loc, ...] = field(default=(), compare=False)  # where each name of ``rules`` is written


@dataclass(frozen=True, slots=True)
class TestCase:
    """One case: either ``message_path`` or inline ``headers``/``body``."""

    __test__ = False  # a data class, not a pytest test class

    name: str
    expect: Expect
    message_path: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    folder: str = "INBOX"
    flags: tuple[str, ...] = ()  # canonical
    now: datetime | None = None  # aware
    loc: Loc = field(default=NOWHERE, compare=False)

    def message_bytes(self) -> bytes:
        """The raw message of this case: the file's bytes, or the inline message built as RFC 5322."""
        if self.message_path is None:
            return build_message(self.headers, self.body)
        try:
            with open(self.message_path, "rb") as stream:
                return stream.read()
        except OSError as exc:
            raise UsageError(f"{self.loc}: cannot read message {self.message_path}: {exc.strerror or exc}") from None


@dataclass(frozen=True, slots=True)
class TestSuite:
    __test__ = False

    path: str
    rules_path: str
    cases: tuple[TestCase, ...]


def load_test_suite(path: str | os.PathLike[str]) -> TestSuite:
    """Read and check a rule test file; ``RuleFileError`` lists every problem, ``UsageError`` a missing file."""
    file = os.fspath(path)
    doc = load_yaml_document(file, "ruletest")
    reader = _Reader(doc.locs, os.path.dirname(file))
    rules_path = reader.existing_file(doc.data["rules"], ("rules",), "rule file")
    cases = tuple(reader.case(data, ("cases", index)) for index, data in enumerate(doc.data["cases"]))
    reader.check_unique_names(cases)
    if reader.problems:
        raise RuleFileError(reader.problems)
    return TestSuite(file, rules_path, cases)


def build_message(headers: Iterable[tuple[str, str]], body: str | None) -> bytes:
    """RFC 5322 bytes for an inline test message; the body is UTF-8 text.

    Content-Type may choose the text subtype (``text/html``); the transfer encoding is
    always picked to fit the body, so a given Content-Transfer-Encoding is ignored.

    >>> raw = build_message([("From", "Ann <ann@example.com>"), ("Subject", "Grüße")], "Hallo\\n")
    >>> b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=" in raw, raw.endswith(b"\\n\\nHallo\\n")
    (True, True)
    """
    message = EmailMessage()
    subtype = "plain"
    for name, value in headers:
        if name.lower() == "content-type":
            subtype = _text_subtype(value)
        elif name.lower() != "content-transfer-encoding":
            message[name] = value
    message.set_content(body or "", subtype=subtype)
    return message.as_bytes()


def _text_subtype(content_type: str) -> str:
    maintype, _, rest = content_type.partition("/")
    subtype = rest.split(";", 1)[0].strip().lower()
    if maintype.strip().lower() != "text" or not subtype:
        raise ValueError(f"an inline message is text; Content-Type {content_type!r} needs a message file instead")
    return subtype


def parse_now(text: str) -> datetime:
    """An aware datetime from ISO 8601 text; without a zone it is UTC.

    >>> parse_now("2026-11-20T10:00:00Z")
    datetime.datetime(2026, 11, 20, 10, 0, tzinfo=datetime.timezone.utc)
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date and time like 2026-11-20T10:00:00Z") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class _Reader:
    locs: LocIndex
    base_dir: str
    problems: list[Problem] = field(default_factory=list)

    def error(self, path: Path, message: str) -> None:
        self.problems.append(Problem(self.locs.at(path), message))

    def existing_file(self, value: str, path: Path, what: str) -> str:
        full = os.path.normpath(os.path.join(self.base_dir, os.path.expanduser(value)))
        if not os.path.isfile(full):
            self.error(path, f"{what} not found: {full}")
        return full

    def case(self, data: dict[str, Any], path: Path) -> TestCase:
        message = data.get("message")
        message_path = self.existing_file(message, path + ("message",), "message file") if message else None
        headers = self.headers(data.get("headers", {}), path + ("headers",))
        if headers:
            self.check_inline_message(headers, data.get("body"), path + ("headers",))
        return TestCase(
            name=data["name"],
            expect=self.expect(data["expect"], path + ("expect",)),
            message_path=message_path,
            headers=headers,
            body=data.get("body"),
            folder=self.folder(data.get("folder", "INBOX"), path + ("folder",)),
            flags=self.flags(data.get("flags", []), path + ("flags",)),
            now=self.now(data.get("now"), path + ("now",)),
            loc=self.locs.at(path),
        )

    def headers(self, data: dict[str, Any], path: Path) -> tuple[tuple[str, str], ...]:
        pairs: list[tuple[str, str]] = []
        for name, value in data.items():
            if not name or set(name) - _HEADER_NAME_CHARS:
                self.problems.append(Problem(self.locs.key(path + (name,)), f"{name!r} is not a header name"))
            pairs.extend((name, item) for item in (value if isinstance(value, list) else [value]))
        return tuple(pairs)

    def check_inline_message(self, headers: tuple[tuple[str, str], ...], body: str | None, path: Path) -> None:
        try:
            build_message(headers, body)
        except (ValueError, TypeError) as exc:
            self.error(path, f"cannot build the inline message: {exc}")

    def expect(self, data: dict[str, Any], path: Path) -> Expect:
        folders = data.get("folders")
        for index, folder in enumerate(folders or []):
            self.folder(folder, path + ("folders", index))
        rules = data.get("rules")
        return Expect(
            rules=tuple(rules) if rules is not None else None,
            folders=tuple(folders) if folders is not None else None,
            flags=self.flags(data["flags"], path + ("flags",)) if "flags" in data else None,
            replies=data.get("replies"),
            redirects=tuple(data["redirects"]) if "redirects" in data else None,
            reply=self.replies(data["reply"], path + ("reply",)) if "reply" in data else None,
            rule_locs=tuple(self.locs.at(path + ("rules", index)) for index in range(len(rules or []))),
        )

    def replies(self, data: dict[str, Any] | list[dict[str, Any]], path: Path) -> tuple[ExpectedReply, ...]:
        items = list(enumerate(data)) if isinstance(data, list) else [(None, data)]
        return tuple(self.reply(item, path if index is None else path + (index,)) for index, item in items)

    def reply(self, data: dict[str, Any], path: Path) -> ExpectedReply:
        contains = data.get("body_contains", ())
        return ExpectedReply(to=data.get("to"), subject=data.get("subject"),
                             body_contains=(contains,) if isinstance(contains, str) else tuple(contains),
                             loc=self.locs.at(path))

    def folder(self, name: str, path: Path) -> str:
        problem = folder_problem(name, destination=True)
        if problem:
            self.error(path, problem)
        return name

    def flags(self, value: str | list[str], path: Path) -> tuple[str, ...]:
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, name in items:
            problem = flag_problem(name)
            if problem:
                self.error(path if index is None else path + (index,), problem)
        return tuple(dict.fromkeys(canonical_flag(name) for _, name in items))

    def now(self, value: str | None, path: Path) -> datetime | None:
        if value is None:
            return None
        try:
            return parse_now(value)
        except ValueError as exc:
            self.error(path, str(exc))
            return None

    def check_unique_names(self, cases: tuple[TestCase, ...]) -> None:
        first: dict[str, Loc] = {}
        for case in cases:
            if case.name in first:
                message = f"duplicate case name {case.name!r}; first at {first[case.name]}"
                self.problems.append(Problem(case.loc, message))
            first.setdefault(case.name, case.loc)
