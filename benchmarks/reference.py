"""The benchmark's expected end states, computed from the Maildir files without either tool.

``RULES`` restates benchmarks/rules.yaml in Python, with two readings of every test:

* ``spec``: the rule language's meaning (RFC 2047-decoded values, Unicode casefold,
  address domains, exact ``older_than``), the result mailrules must produce;
* ``imapfilter``: what benchmarks/imapfilter/config.lua makes imapfilter 2.8 do: its
  ``contain_*`` methods are server SEARCHes (decoded, case-insensitive substrings), its
  ``match_*`` regexes run client-side on the *raw* header value as fetched, and
  ``is_older(n)`` is ``SEARCH BEFORE <day n days ago>`` (whole days, local time).

Messages are parsed with the standard library's ``email`` package only, so this is
independent of mailrules' own message code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path
from typing import Literal, Protocol, TypeAlias

Semantics: TypeAlias = Literal["spec", "imapfilter"]
EndState: TypeAlias = dict[str, dict[str, frozenset[str]]]  # folder -> Message-ID -> flags

MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}
HEADER_HEAD = 64 * 1024  # generated headers are far shorter; the parser only needs the header block


@dataclass(frozen=True, slots=True)
class Stored:
    """A message as it lies in the mailbox: raw header values (folding kept) by lower-case name."""

    message_id: str
    folder: str
    flags: frozenset[str]
    arrived: datetime
    raw_headers: Mapping[str, tuple[str, ...]]

    def raw(self, name: str) -> tuple[str, ...]:
        return self.raw_headers.get(name.lower(), ())

    def decoded(self, name: str) -> tuple[str, ...]:
        return tuple(decode_value(value) for value in self.raw(name))


def unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value)


def decode_value(raw: str) -> str:
    """The RFC 2047-decoded, unfolded value; the raw text when it cannot be decoded."""
    try:
        return str(make_header(decode_header(unfold(raw))))
    except (ValueError, LookupError, UnicodeDecodeError):
        return unfold(raw)


# ---------------------------------------------------------------- reading a Maildir


def maildir_folders(root: Path) -> Iterable[tuple[str, Path]]:
    """(folder name, directory) for INBOX and every Maildir++ subfolder of ``root``."""
    yield "INBOX", root
    for path in sorted(root.iterdir()):
        if path.is_dir() and path.name.startswith(".") and (path / "cur").is_dir():
            yield path.name[1:].replace(".", "/"), path


def read_keywords(root: Path) -> dict[str, str]:
    """Dovecot's ``dovecot-keywords``: keyword letters a-z to names."""
    path = root / "dovecot-keywords"
    if not path.exists():
        return {}
    pairs = (line.split(" ", 1) for line in path.read_text().splitlines() if " " in line)
    return {chr(ord("a") + int(number)): name for number, name in pairs}


def flags_from_name(name: str, keywords: Mapping[str, str]) -> frozenset[str]:
    _, sep, info = name.partition(":2,")
    if not sep:
        return frozenset()
    return frozenset(MAILDIR_FLAGS.get(letter) or keywords.get(letter, letter) for letter in info)


def read_stored(path: Path, folder: str, keywords: Mapping[str, str]) -> Stored:
    with path.open("rb") as handle:
        head = handle.read(HEADER_HEAD)
    end = head.find(b"\n\n")
    parsed = BytesHeaderParser(policy=compat32).parsebytes(head if end < 0 else head[:end + 2])
    headers: dict[str, list[str]] = {}
    for name, value in parsed.items():
        headers.setdefault(name.lower(), []).append(str(value).replace("\r\n", "\n").replace("\n", "\r\n"))
    message_id = decode_value(headers.get("message-id", [f"<no-id:{path.name}>"])[0]).strip()
    arrived = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    return Stored(message_id, folder, flags_from_name(path.name, keywords), arrived,
                  {name: tuple(values) for name, values in headers.items()})


def read_mailbox(root: Path) -> list[Stored]:
    """Every message in the Maildir++ tree under ``root`` (``new/`` and ``cur/``)."""
    keywords = read_keywords(root)
    return [read_stored(path, folder, keywords)
            for folder, directory in maildir_folders(root)
            for sub in ("new", "cur")
            for path in sorted((directory / sub).iterdir())]


def end_state(messages: Iterable[Stored]) -> EndState:
    state: EndState = {}
    for message in messages:
        state.setdefault(message.folder, {})[message.message_id] = message.flags
    return state


_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]*>)[ \t]*\r?$", re.I | re.M)


def read_end_state(root: Path) -> EndState:
    """Like ``end_state(read_mailbox(root))``, reading only each file's Message-ID line when it can."""
    keywords = read_keywords(root)
    state: EndState = {}
    for folder, directory in maildir_folders(root):
        for sub in ("new", "cur"):
            for path in (directory / sub).iterdir():
                state.setdefault(folder, {})[_message_id(path, folder, keywords)] = flags_from_name(path.name, keywords)
    return state


def _message_id(path: Path, folder: str, keywords: Mapping[str, str]) -> str:
    with path.open("rb") as handle:
        head = handle.read(8192)
    end = head.find(b"\n\n")
    match = _MESSAGE_ID.search(head, 0, end if end >= 0 else len(head))
    return match.group(1).decode("ascii", "replace") if match else read_stored(path, folder, keywords).message_id


# ---------------------------------------------------------------- tests


@dataclass(frozen=True, slots=True)
class Context:
    """What a test may look at besides the message: the clock and the flags earlier rules set."""

    now: datetime
    flags: frozenset[str]


class Test(Protocol):
    def holds(self, message: Stored, context: Context, semantics: Semantics) -> bool: ...


@dataclass(frozen=True, slots=True)
class Contains:
    """``key: s`` / ``key: [s, ...]`` on decoded values; imapfilter's SEARCH FROM/HEADER agrees."""

    headers: tuple[str, ...]
    needles: tuple[str, ...]

    def holds(self, message: Stored, context: Context, semantics: Semantics) -> bool:
        values = [value.casefold() for name in self.headers for value in message.decoded(name)]
        return any(needle.casefold() in value for needle in self.needles for value in values)


@dataclass(frozen=True, slots=True)
class Is:
    """``header: {name: N, is: s}``; imapfilter can only ask for a substring (``contain_field``)."""

    header: str
    value: str

    def holds(self, message: Stored, context: Context, semantics: Semantics) -> bool:
        wanted = self.value.casefold()
        values = [value.strip().casefold() for value in message.decoded(self.header)]
        if semantics == "imapfilter":
            return any(wanted in value for value in values)
        return wanted in values


@dataclass(frozen=True, slots=True)
class ListId:
    """``list_id: s``: the identifier inside ``<...>``; imapfilter searches the whole List-Id value."""

    needle: str

    def holds(self, message: Stored, context: Context, semantics: Semantics) -> bool:
        values = message.decoded("List-Id")
        if semantics == "spec":
            values = tuple(_list_identifier(value) for value in values)
        return any(self.needle.casefold() in value.casefold() for value in values)


def _list_identifier(value: str) -> str:
    match = re.search(r"<([^>]*)>", value)
    return match.group(1) if match else value.strip()


@dataclass(frozen=True, slots=True)
class SubjectRegex:
    """A case-sensitive regex on the subject.

    imapfilter: ``(contain_subject(a) + ...):match_subject(re)`` -- a server search narrows,
    then the regex runs on the raw field text imapfilter fetched (encoded words and all).
    """

    pattern: str
    narrowing: tuple[str, ...]

    def holds(self, message: Stored, context: Context, semantics: Semantics) -> bool:
        if semantics == "spec":
            return any(re.search(self.pattern, value) for value in message.decoded("Subject"))
        if not Contains(("Subject",), self.narrowing).holds(message, context, semantics):
            return False
        return any(re.search(self.pattern, value) for value in message.raw("Subject"))


@dataclass(frozen=True, slots=True)
class Domain:
    """``from: {domain: d}``: an address's domain is d or below it; imapfilter has only ``contain_from(d)``."""

    header: str
    domain: str

    def holds(self, message: Stored, context: Context, semantics: Semantics) -> bool:
        wanted = self.domain.casefold()
        if semantics == "imapfilter":
            return Contains((self.header,), (self.domain,)).holds(message, context, semantics)
        domains = [address.rpartition("@")[2].casefold()
                   for _, address in getaddresses(list(message.decoded(self.header)))]
        return any(domain == wanted or domain.endswith("." + wanted) for domain in domains)


@dataclass(frozen=True, slots=True)
class OlderThan:
    """``older_than: Nd`` is exact; imapfilter's ``is_older(N)`` is ``BEFORE`` the local day N days ago."""

    days: int

    def holds(self, message: Stored, context: Context, semantics: Semantics) -> bool:
        cutoff = context.now - timedelta(days=self.days)
        if semantics == "spec":
            return message.arrived < cutoff
        return message.arrived.astimezone().date() < cutoff.astimezone().date()


@dataclass(frozen=True, slots=True)
class HasFlag:
    flag: str
    present: bool = True

    def holds(self, message: Stored, context: Context, semantics: Semantics) -> bool:
        return (self.flag in context.flags) == self.present


@dataclass(frozen=True, slots=True)
class AllOf:
    children: tuple[Test, ...]

    def holds(self, message: Stored, context: Context, semantics: Semantics) -> bool:
        return all(child.holds(message, context, semantics) for child in self.children)


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Test, ...]

    def holds(self, message: Stored, context: Context, semantics: Semantics) -> bool:
        return any(child.holds(message, context, semantics) for child in self.children)


# ---------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class Rule:
    """``action`` is ``move``, ``trash``, ``delete`` or ``flag``; ``argument`` its folder or flag."""

    name: str
    test: Test
    action: Literal["move", "trash", "delete", "flag"]
    argument: str = ""


RECIPIENT = ("To", "Cc", "Bcc")
RULES: tuple[Rule, ...] = (
    Rule("spam", Is("X-Spam-Flag", "YES"), "delete"),
    Rule("vip", Contains(("From",), ("boss@example.com",)), "flag", "\\Flagged"),
    Rule("github-old", AllOf((ListId("github.com"), OlderThan(365))), "trash", "Trash"),
    Rule("github", ListId("github.com"), "move", "Notifications/GitHub"),
    Rule("python-dev", ListId("python-dev.python.org"), "move", "Lists/python-dev"),
    Rule("lkml", ListId("linux-kernel.vger.kernel.org"), "move", "Lists/lkml"),
    Rule("debian", ListId("lists.debian.org"), "move", "Lists/debian"),
    Rule("ci-broken", AllOf((Contains(("From",), ("builds@ci.example.com",)),
                             AnyOf((Contains(("Subject",), ("failed",)), Contains(("Subject",), ("broken",)))))),
         "move", "Alerts"),
    Rule("ci-other", Contains(("From",), ("builds@ci.example.com",)), "delete"),
    Rule("invoices", SubjectRegex(r"^(Rechnung|Invoice) (Nr\.|No\.) ?\d+", ("Rechnung", "Invoice")),
         "move", "Finance/Invoices"),
    Rule("receipts", Domain("From", "paypal.com"), "move", "Finance/Receipts"),
    Rule("newsletters-old", AllOf((Is("Precedence", "bulk"), OlderThan(180))), "trash", "Trash"),
    Rule("newsletters", Is("Precedence", "bulk"), "move", "Newsletters"),
    Rule("social", Contains(("From",), ("facebookmail.com", "linkedin.com")), "move", "Social"),
    Rule("team", Contains(RECIPIENT, ("team@example.com",)), "move", "Work"),
    Rule("jira", Contains(("From",), ("jira@work.example",)), "move", "Work"),
    Rule("shopping", Contains(("Subject",), ("your order",)), "move", "Shopping"),
    Rule("travel", Contains(("Subject",), ("boarding pass", "booking confirmation")), "move", "Travel"),
    Rule("other-lists", Is("Precedence", "list"), "move", "Lists/Other"),
    Rule("old-read", AllOf((HasFlag("\\Seen"), OlderThan(540), HasFlag("\\Flagged", present=False))),
         "move", "Archive"),
)
RULE_FOLDERS = ("INBOX",)


def destinations(rules: Sequence[Rule] = RULES) -> tuple[str, ...]:
    """Every folder a rule moves or trashes into, in rule order."""
    return tuple(dict.fromkeys(rule.argument for rule in rules if rule.action in ("move", "trash")))


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where one message ends up (None: deleted), its final flags, the rules that matched
    and the one that filed it (None when it stayed where it was)."""

    folder: str | None
    flags: frozenset[str]
    matched: tuple[str, ...] = field(default=())
    filed_by: str | None = None


def apply_rules(message: Stored, now: datetime, semantics: Semantics,
                rules: Sequence[Rule] = RULES) -> Outcome:
    """First terminal rule wins; a flag rule's change is visible to the rules after it."""
    flags, matched = message.flags, []
    for rule in rules:
        if not rule.test.holds(message, Context(now, flags), semantics):
            continue
        matched.append(rule.name)
        if rule.action == "flag":
            flags = flags | {rule.argument}
            continue
        return Outcome(None if rule.action == "delete" else rule.argument, flags, tuple(matched), rule.name)
    return Outcome(message.folder, flags, tuple(matched))


def expected_state(messages: Iterable[Stored], now: datetime, semantics: Semantics,
                   rules: Sequence[Rule] = RULES) -> tuple[EndState, dict[str, Outcome]]:
    """The end state after one run over the rule folders, and each message's outcome."""
    state: EndState = {}
    outcomes: dict[str, Outcome] = {}
    for message in messages:
        if message.folder in RULE_FOLDERS:
            outcome = apply_rules(message, now, semantics, rules)
        else:
            outcome = Outcome(message.folder, message.flags)
        outcomes[message.message_id] = outcome
        if outcome.folder is not None:
            state.setdefault(outcome.folder, {})[message.message_id] = outcome.flags
    return state, outcomes


# ---------------------------------------------------------------- comparing


@dataclass(frozen=True, slots=True)
class Difference:
    message_id: str
    expected: str  # "Folder [flags]" or "(deleted)"
    actual: str


def describe(state: EndState) -> dict[str, str]:
    """Message-ID -> "Folder [flags]" for every message in ``state``."""
    return {message_id: f"{folder} [{' '.join(sorted(flags))}]"
            for folder, messages in state.items() for message_id, flags in messages.items()}


def compare(expected: EndState, actual: EndState) -> list[Difference]:
    """Messages whose folder or flags differ; empty folders count as absent."""
    want, have = describe(expected), describe(actual)
    return [Difference(message_id, want.get(message_id, "(deleted)"), have.get(message_id, "(deleted)"))
            for message_id in sorted(want.keys() | have.keys())
            if want.get(message_id) != have.get(message_id)]

