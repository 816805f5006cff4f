"""The SEARCH pre-filter against a real Dovecot: it never drops a message the rule matches.

Messages are appended to a private Dovecot (see ``tests/conftest.py``) with varied flags
and arrival times.  For many conditions, the messages the local matcher accepts (on the
message as fetched back from the server) must all be in the server's answer to
``to_search(cond)``; where the query is exact, the two must be equal.

The one documented exception: encoded words in a charset nobody knows are compared raw
by the local check (spec §2.1) but are invisible to Dovecot's SEARCH.
"""

from __future__ import annotations

import bisect
import collections
import email.header
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from imapclient import IMAPClient

from mailrules.match import EvalContext, matches, string_predicate
from mailrules.message import MessageView, decode_words
from mailrules.model import (
    AddressTest,
    AgeTest,
    All,
    Any,
    AttachmentTest,
    BodyTest,
    Condition,
    DateTest,
    FlagTest,
    HeaderExists,
    HeaderTest,
    Not,
    SizeTest,
)
from mailrules.search import to_search
from tests.conformance.cases import MESSAGES

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
FIXTURES = Path(__file__).parent.parent / "fixtures"
FIXTURE_NAMES = (
    "auto-reply", "bad-charset", "bounce", "empty-headers", "encoded-words", "github-notification", "github-pr",
    "group-syntax", "grusse-utf8-headers", "html-only", "lf-only", "long-header", "missing-date-from",
    "newsletter", "python-dev", "quoted-comma", "raw-8bit-latin1", "received-chain", "spam-flagged",
    "undisclosed-recipients",
)
# Arrival times around NOW, in zones at both ends of the world.
ARRIVALS = [
    NOW - timedelta(minutes=30),
    (NOW - timedelta(hours=13)).astimezone(timezone(timedelta(hours=14))),
    (NOW - timedelta(days=2, hours=3)).astimezone(timezone(timedelta(hours=-12))),
    NOW - timedelta(days=31),
    NOW - timedelta(days=400),
]
FLAG_SETS = [(), ("\\Seen",), ("\\Flagged", "$Label"), ("\\Seen", "\\Answered", "$label"), ("\\Draft", "\\Deleted")]
STRING_HEADERS = ("Subject", "From", "To", "Cc", "Reply-To", "Sender", "List-Id", "X-Mixed", "X-Unknown-Charset", "X-Spam-Flag")
ADDRESS_HEADERS = ("From", "To", "Cc", "Reply-To", "Sender")
RECIPIENT = ("To", "Cc", "Bcc")


def corpus() -> list[bytes]:
    paths = sorted(MESSAGES.glob("*.eml")) + [FIXTURES / f"{name}.eml" for name in FIXTURE_NAMES]
    return [path.read_bytes() for path in paths if path.exists()]


@dataclass
class Mailbox:
    imap: IMAPClient
    views: dict[int, MessageView]


def _fill(dovecot: object, messages: Iterable[bytes]) -> Iterator[Mailbox]:
    """A fresh account holding the messages, with flags and arrival times taken in turn."""
    user = dovecot.add_user()  # type: ignore[attr-defined]
    items = [
        {"msg": raw, "flags": FLAG_SETS[index % len(FLAG_SETS)], "date": ARRIVALS[index % len(ARRIVALS)]}
        for index, raw in enumerate(messages)
    ]
    with dovecot.client(user) as imap:  # type: ignore[attr-defined]
        for start in range(0, len(items), 500):
            imap.multiappend("INBOX", items[start : start + 500])
        imap.select_folder("INBOX", readonly=True)
        yield Mailbox(imap, _fetch_views(imap))


def _fetch_views(imap: IMAPClient) -> dict[int, MessageView]:
    """Each message as the planner would see it: the server's bytes, flags and INTERNALDATE."""
    views = {}
    for uid, data in imap.fetch(imap.search("ALL"), ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"]).items():
        flags = [flag.decode() if isinstance(flag, bytes) else flag for flag in data[b"FLAGS"]]
        internaldate = data[b"INTERNALDATE"]
        if internaldate.tzinfo is None:  # imapclient normalises to local time unless told otherwise
            internaldate = internaldate.astimezone()
        views[uid] = MessageView.from_bytes(data[b"BODY[]"], flags=flags, internaldate=internaldate)
    return views


@pytest.fixture(scope="module")
def mailbox(dovecot: object) -> Iterator[Mailbox]:
    yield from _fill(dovecot, corpus())


# ---------------------------------------------------------------- conditions


def _needles(value: str) -> list[str]:
    words = [word for word in re.split(r"[\s,;<>\"()]+", value) if word]
    middle = value[len(value) // 3 : 2 * len(value) // 3]
    return list(dict.fromkeys([value, value.upper(), value.swapcase(), middle, *words, *(w.upper() for w in words)]))


def string_conditions(views: Iterable[MessageView]) -> Iterator[Condition]:
    """Header tests that hit the corpus: every operator, with needles taken from its own values."""
    for view in views:
        for name in STRING_HEADERS:
            for value in view.header_values(name):
                for needle in _needles(value):
                    yield HeaderTest("header", (name,), "contains", (needle,))
                yield HeaderTest("header", (name,), "is", (value.upper(),))
                yield HeaderTest("header", (name,), "matches", ("*" + value[2:-2].replace("\\", "\\\\") + "*",))
                for word in _needles(value)[4:]:
                    yield HeaderTest("header", (name,), "regex", (re.escape(word) + r"\b",))
                    yield HeaderTest("recipient", RECIPIENT, "contains", (word,))
            if name == "List-Id":
                for value in view.header_values(name):
                    yield HeaderTest("list_id", (name,), "is", (value.rpartition("<")[2].rstrip(">"),), list_id=True)
        for name in ADDRESS_HEADERS:
            for found in view.addresses(name):
                yield AddressTest("header", (name,), "address", (found.address.upper(),))
                yield AddressTest("header", (name,), "localpart", (found.localpart,))
                yield AddressTest("header", (name,), "domain", (found.domain.partition(".")[2] or found.domain,))
                for word in _needles(found.display_name)[4:]:
                    yield AddressTest("header", (name,), "display_name", (word,))


def other_conditions(views: Iterable[MessageView]) -> Iterator[Condition]:
    for flag in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Label", "$LABEL"):
        yield FlagTest(flag, True)
        yield FlagTest(flag, False)
    for name in ("List-Id", "X-Spam-Flag", "Cc", "Bcc", "Date", "Subject"):
        yield HeaderExists("header", (name,), True)
        yield HeaderExists("header", (name,), False)
    for view in views:
        for delta in (-1, 0, 1):
            yield SizeTest("larger", view.size + delta)
            yield SizeTest("smaller", view.size + delta)
        for moment in filter(None, (view.internaldate, view.sent_date())):
            for days in (-1, 0, 1):
                day = moment.date() + timedelta(days=days)
                for source, operator in itertools.product(("arrival", "sent"), ("before", "since")):
                    yield DateTest(source, operator, day)  # type: ignore[arg-type]
    for seconds in (3600, 13 * 3600, 2 * 86400, 31 * 86400, 400 * 86400):
        yield AgeTest("older_than", seconds)
        yield AgeTest("newer_than", seconds)
    yield BodyTest("body", "contains", ("invoice",))
    yield AttachmentTest(True)
    seen, label, subject = FlagTest("\\Seen", True), FlagTest("$Label", True), HeaderTest("subject", ("Subject",), "contains", ("re",))
    yield All((seen, label))
    yield Any((seen, subject))
    yield Not(All((seen, Any((label, SizeTest("larger", 500))))))
    yield Any((All((Not(seen), subject)), HeaderExists("header", ("List-Id",), True)))
    yield Not(Any((seen, subject)))


# ---------------------------------------------------------------- the check


@dataclass(frozen=True)
class Finding:
    cond: Condition
    uid: int
    kind: str  # "missed" (local match the server dropped) or "inexact" (exact query disagreed)


def _undecodable(view: MessageView, cond: Condition) -> bool:
    names = getattr(cond, "names", ())
    return any(decode_words(raw) is None for name in names for raw in view.raw_header_values(name))


Local = Callable[[Condition], set[int]]


def check(box: Mailbox, conditions: Iterable[Condition], local_matches: Local | None = None) -> tuple[int, list[Finding], list[Finding]]:
    """(conditions checked, unexplained findings, findings explained by undecodable encoded words)."""
    ctx = EvalContext(now=NOW)
    local_matches = local_matches or (lambda cond: {uid for uid, view in box.views.items() if matches(cond, view, ctx)})
    answers: dict[tuple[object, ...], set[int]] = {}
    unexplained, explained = [], []
    runs = 0
    for cond in dict.fromkeys(conditions):
        query = to_search(cond, now=NOW)
        key = query.keys
        if key not in answers:
            answers[key] = set(box.imap.search(list(query.criteria), charset="UTF-8" if query.needs_utf8 else None))
        server, local = answers[key], local_matches(cond)
        runs += 1
        findings = [Finding(cond, uid, "missed") for uid in sorted(local - server)]
        if query.exact:
            findings += [Finding(cond, uid, "inexact") for uid in sorted(server - local)]
        for finding in findings:
            target = explained if finding.kind == "missed" and _undecodable(box.views[finding.uid], cond) else unexplained
            target.append(finding)
    return runs, unexplained, explained


def _report(findings: list[Finding], box: Mailbox) -> str:
    return "\n".join(f"{f.kind}: UID {f.uid} ({box.views[f.uid].subject!r}) for {f.cond}" for f in findings[:20])


def test_strings_never_drop_a_match(mailbox: Mailbox) -> None:
    runs, unexplained, explained = check(mailbox, string_conditions(mailbox.views.values()))
    assert runs > 500
    assert not unexplained, _report(unexplained, mailbox)
    # the documented gap shows up, and only for the message built to show it
    assert {mailbox.views[f.uid].message_id for f in explained} <= {"<badcs-1@example.com>", "<enc-1@example.de>"}


def test_flags_sizes_dates_and_combinators(mailbox: Mailbox) -> None:
    runs, unexplained, explained = check(mailbox, other_conditions(mailbox.views.values()))
    assert runs > 100
    assert not unexplained, _report(unexplained, mailbox)
    assert not explained


# ---------------------------------------------------------------- every case relation Unicode knows


def _case_classes() -> list[set[str]]:
    """Characters grouped by casefold, with their upper and lower forms, for letters that have case."""
    classes: dict[str, set[str]] = collections.defaultdict(set)
    for code in range(0xA0, 0x10000):
        char = chr(code)
        if unicodedata.category(char) in ("Cc", "Cs", "Co", "Cn") or (char.casefold() == char == char.upper()):
            continue
        classes[char.casefold()].add(char)
    for key, members in classes.items():
        members |= {key, key.upper()} | {m.upper() for m in members} | {m.lower() for m in members}
    return list(classes.values())


@pytest.fixture(scope="module")
def unicode_mailbox(dovecot: object) -> Iterator[Mailbox]:
    members = sorted({member for group in _case_classes() for member in group})
    # a mark after a precomposed letter is where servers reorder marks (canonical ordering)
    values = [f"qa{member}zb" for member in members]
    values += [f"qa{m}\u0323zb" for m in members if len(m) == 1 and unicodedata.decomposition(m)]
    messages = [f"From: a@b.example\r\nSubject: {email.header.Header(v, 'utf-8').encode()}\r\n\r\nx\r\n".encode() for v in values]
    yield from _fill(dovecot, messages)


class _Haystack:
    """Every subject, casefolded, in one string: finds the subjects containing a needle at C speed.

    ``contains`` is a casefolded substring test (spec §2.1); the test checks that this
    agrees with the matcher's own predicate on a sample before relying on it.
    """

    def __init__(self, views: dict[int, MessageView]):
        self.uids = list(views)
        self.values = [views[uid].subject for uid in self.uids]
        self.text = "\x00".join(value.casefold() for value in self.values)
        self.starts = list(itertools.accumulate((len(value.casefold()) + 1 for value in self.values), initial=0))

    def containing(self, needle: str) -> set[int]:
        found, wanted, at = set(), needle.casefold(), self.text.find(needle.casefold())
        while at >= 0 and wanted:
            index = bisect.bisect_right(self.starts, at) - 1
            found.add(self.uids[index])
            at = self.text.find(wanted, self.starts[index + 1])
        return found

    def by_matcher(self, needle: str) -> set[int]:
        predicate = string_predicate("contains", needle, False)
        return {uid for uid, value in zip(self.uids, self.values) if predicate(value, value.casefold())}


@pytest.mark.slow
def test_every_case_relation_of_unicode(unicode_mailbox: Mailbox) -> None:
    """Subjects with every cased character (and one followed by a mark); needles in other case forms and parts."""
    needles = set()
    for view in unicode_mailbox.views.values():
        folded = view.subject.casefold()
        needles |= {view.subject.upper(), folded[1:-1], folded[2:-2]}
    haystack = _Haystack(unicode_mailbox.views)
    for needle in sorted(needles)[::97]:
        assert haystack.containing(needle) == haystack.by_matcher(needle), needle
    conditions = [HeaderTest("subject", ("Subject",), "contains", (needle,)) for needle in sorted(needles)]
    runs, unexplained, explained = check(unicode_mailbox, conditions, lambda cond: haystack.containing(cond.values[0]))  # type: ignore[attr-defined]
    assert runs > 4000
    assert not unexplained and not explained, _report(unexplained + explained, unicode_mailbox)
