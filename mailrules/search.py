"""A condition as an IMAP SEARCH: a server-side pre-filter that never drops a matching message.

The server may return more messages than a rule matches, never fewer; the local matcher
(``match.py``) decides the rest.  A query is ``exact`` only when the server's answer *is*
the rule's answer, which lets the planner skip fetching what the local check would read.

How each condition is pushed (``mailrules compile --to imap`` shows the result):

* ``all`` pushes every child it can (a conjunction only narrows); ``any`` only when every
  branch narrows, else the whole ``any`` is ``ALL``; ``not`` only around an exact child.
* Flags, ``keyword``, ``larger``/``smaller`` and ``exists`` are exact (``HEADER name ""``
  matches every message that has the field, RFC 3501 §6.4.4), unless an earlier rule
  changes that flag (``volatile_flags``): later rules must see the change, so it stays local.
* Dates are widened to whole days on the safe side, since the server picks the calendar day
  in its own zone: ``BEFORE``/``SINCE`` ±2 days (real zones lie within −12…+14 h),
  ages from ``now`` by the extreme zones, ``sent_before`` as ``SENTBEFORE`` + 2 days.
  ``sent_since`` is not pushed: Dovecot reads Date headers it cannot parse (asctime,
  ``15-Jan-2025 …``, which Python reads) as 1970, so ``SENTSINCE`` would miss them.
* ``body``/``text`` and ``has_attachment`` are not pushed: BODY/TEXT see raw HTML, where
  markup or entities can split the text a rule looks for.
* Header strings are never exact, and what is sent is the longest piece of the needle the
  server is sure to find whenever the rule matches (see :func:`server_fragment`): servers
  compare case-insensitively but do not fold ``ß``/ligatures to ASCII the way Unicode
  casefolding does, collapse runs of white space, re-render address headers, and read
  raw Latin-1 header bytes as U+FFFD where mailrules reads Latin-1.  With no
  such piece, the query still requires the header to be present, which every string
  operator implies.

One gap is known and left open: an encoded word in a charset nobody knows
(``=?x-bogus?Q?Rechnung?=``) is compared raw by the local check (spec §2.1), while
Dovecot leaves such words out of SEARCH altogether, so a needle found only inside one is
missed.  ``tests/conformance/test_search_dovecot.py`` checks the rest against Dovecot.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from re import _parser as sre_parse  # type: ignore[attr-defined]  # the only parser that knows every regex form

from mailrules.backends.base import FetchNeeds
from mailrules.model import (
    AddFlags,
    AddressTest,
    AgeTest,
    All,
    Any,
    AttachmentPartTest,
    AttachmentTest,
    MimeHeaderTest,
    BodyTest,
    CountTest,
    DatePartTest,
    PartCheck,
    WEEKDAYS,
    Condition,
    DateTest,
    Delete,
    FlagTest,
    HeaderExists,
    HeaderTest,
    Not,
    RemoveFlags,
    Reply,
    Rule,
    SizeTest,
    SYSTEM_FLAGS,
    flag_key,
)

from mailrules.query import (
    ALL_KEYS,
    Group,
    Key,
    NotKey,
    OrKey,
    SearchQuery,
    Term,
    any_of,
    group,
    is_ascii_key,
)


def _exact(*keys: Key) -> SearchQuery:
    return SearchQuery(tuple(keys), True, None)


def _narrowed(cond: Condition, keys: Sequence[Key], *notes: str) -> SearchQuery:
    return SearchQuery(tuple(keys), False, cond, notes)


def _local(cond: Condition, note: str) -> SearchQuery:
    return SearchQuery(ALL_KEYS, False, cond, (note,))


# ---------------------------------------------------------------- compiling conditions


@dataclass(frozen=True, slots=True)
class _Env:
    volatile_flags: frozenset[str]
    now: datetime | None
    header_strings: bool


def to_search(
    cond: Condition,
    *,
    volatile_flags: frozenset[str] = frozenset(),
    now: datetime | None = None,
    header_strings: bool = True,
) -> SearchQuery:
    """The IMAP SEARCH for ``cond``: every message that matches is in its result.

    ``volatile_flags`` are flag keys (:func:`mailrules.model.flag_key`) that earlier rules
    change, see :func:`volatile_flags_before`; ``now`` (timezone-aware) is needed to
    push ``older_than``/``newer_than``.  ``header_strings=False`` sends no header text,
    only the header's presence: for servers whose header search is not a substring
    search (Gmail matches words), where a fragment could miss matching messages.

    >>> from mailrules.model import FlagTest, HeaderTest
    >>> to_search(FlagTest("\\\\Seen", False)).criteria
    ('UNSEEN',)
    >>> to_search(HeaderTest("from", ("From",), "contains", ("GitHub",))).criteria
    ('FROM', 'github')
    """
    if now is not None and now.tzinfo is None:
        raise ValueError("to_search: `now` must be timezone-aware")
    return _push(cond, _Env(frozenset(volatile_flags), now, header_strings))


def _push(cond: Condition, env: _Env) -> SearchQuery:
    match cond:
        case All(children):
            return _push_all(cond, [_push(child, env) for child in children])
        case Any(children):
            return _push_any(cond, [_push(child, env) for child in children])
        case Not(child):
            return _push_not(cond, _push(child, env))
        case HeaderTest(names=names) | AddressTest(names=names) if not env.header_strings:
            note = f"{cond.key}: header text is not searched on this server, only the header's presence"
            return _narrowed(cond, [any_of([_presence(name) for name in names])], note)
        case HeaderTest() | AddressTest():
            return _push_strings(cond)
        case HeaderExists(names=names, present=present):
            return _push_exists(names, present)
        case CountTest():
            return _push_count(cond)
        case BodyTest(scope=scope):
            return _local(cond, f"{scope}: BODY/TEXT search sees raw HTML, where markup can split the text")
        case SizeTest():
            return _push_size(cond)
        case AgeTest():
            return _push_age(cond, env.now)
        case DateTest():
            return _push_date(cond)
        case DatePartTest(source=source):
            what = "sent" if source == "sent" else "arrived"
            return _local(cond, f"{what}: IMAP SEARCH has no weekday or hour, only whole days")
        case FlagTest():
            return _push_flag(cond, env.volatile_flags)
        case AttachmentTest():
            return _local(cond, "has_attachment: IMAP SEARCH cannot see MIME structure")
        case AttachmentPartTest():
            return _local(cond, "attachment: IMAP SEARCH cannot see MIME structure")
        case MimeHeaderTest():
            return _local(cond, "mime_header: IMAP SEARCH reads only the message's own header")
    raise TypeError(f"not a condition: {cond!r}")


def _push_all(cond: All, parts: list[SearchQuery]) -> SearchQuery:
    keys = tuple(key for part in parts for key in part.keys)
    notes = tuple(note for part in parts for note in part.notes)
    residuals = [part.residual for part in parts if part.residual is not None]
    if not residuals:
        return SearchQuery(keys, True, None, notes)
    residual = residuals[0] if len(residuals) == 1 else All(tuple(residuals), cond.loc)
    return SearchQuery(keys, False, residual, notes)


def _push_any(cond: Any, parts: list[SearchQuery]) -> SearchQuery:
    notes = tuple(note for part in parts for note in part.notes)
    if not parts:
        return SearchQuery((NotKey(Term(("ALL",))),), True, None)
    exact = all(part.exact for part in parts)
    branches = [_branch_key(part) for part in parts]
    if any(branch is None for branch in branches):
        if exact:
            return SearchQuery(ALL_KEYS, True, None, notes)
        return SearchQuery(ALL_KEYS, False, cond, notes + ("any: a branch cannot be searched, so neither can the any",))
    ascii_dropped = any(_branch_dropped_text(part) for part in parts)
    if ascii_dropped:
        notes += ("any: non-ASCII text inside a parenthesised OR operand is left to the local check",)
    return SearchQuery((any_of(branches),), exact, None if exact else cond, notes)  # type: ignore[arg-type]


def _branch_key(part: SearchQuery) -> Key | None:
    """One OR operand for a branch, or None when the branch narrows nothing.

    imapclient can't send non-ASCII text inside parentheses (it encodes nested lists as
    ASCII and appends the closing parenthesis to the literal), so a conjunction drops such
    keys: a smaller conjunction inside an ``OR`` only widens the result.  Strings are never
    exact, so no exact branch loses anything.
    """
    keys = part.keys if len(part.keys) < 2 else tuple(key for key in part.keys if is_ascii_key(key))
    return group(keys) if keys else None


def _branch_dropped_text(part: SearchQuery) -> bool:
    return len(part.keys) >= 2 and not all(is_ascii_key(key) for key in part.keys)


def _push_not(cond: Not, part: SearchQuery) -> SearchQuery:
    if not part.exact:
        return SearchQuery(ALL_KEYS, False, cond, part.notes + ("not: only an exact search can be negated",))
    inner = group(part.keys) if part.keys else Term(("ALL",))
    return SearchQuery((NotKey(inner),), True, None, part.notes)


# ---------------------------------------------------------------- exact leaves

_IMAP_NUMBER_MAX = 2**32 - 1  # RFC 3501 number: unsigned 32-bit


def _push_exists(names: Sequence[str], present: bool) -> SearchQuery:
    keys = [_presence(name) for name in names]
    if present:
        return _exact(any_of(keys))
    return _exact(*(NotKey(key) for key in keys))


def _push_count(cond: CountTest) -> SearchQuery:
    """A count that needs at least one occurrence needs the header; SEARCH can't count further."""
    needs_one = {"gt": cond.number >= 0, "ge": cond.number >= 1, "eq": cond.number >= 1}.get(cond.relation, False)
    note = f"count {cond.key}: IMAP SEARCH cannot count {'addresses' if cond.addresses else 'occurrences'}"
    if needs_one:
        return _narrowed(cond, [any_of([_presence(name) for name in cond.names])], note)
    return _local(cond, note)


def _presence(name: str) -> Term:
    return Term(("HEADER", name, ""))


def _push_size(cond: SizeTest) -> SearchQuery:
    if not 0 <= cond.size <= _IMAP_NUMBER_MAX:
        return _local(cond, f"{cond.operator} {cond.size}: beyond IMAP's 32-bit numbers")
    return _exact(Term((cond.operator.upper(), cond.size)))


_SYSTEM_KEYS = {canonical: bare.upper() for bare, canonical in SYSTEM_FLAGS.items()}
_KEYWORD = re.compile(r"[!#$&'+-Z^-z|~]+")  # RFC 3501 atom characters, no "\" and no "]"


def _push_flag(cond: FlagTest, volatile: frozenset[str]) -> SearchQuery:
    if flag_key(cond.flag) in volatile:
        return _local(cond, f"{cond.flag}: an earlier rule changes it, and later rules see the change")
    system = _SYSTEM_KEYS.get(cond.flag)
    if system is not None:
        return _exact(Term((system if cond.present else "UN" + system,)))
    if not _KEYWORD.fullmatch(cond.flag):
        return _local(cond, f"keyword {cond.flag!r}: not a valid IMAP keyword")
    return _exact(Term(("KEYWORD" if cond.present else "UNKEYWORD", cond.flag)))


# ---------------------------------------------------------------- dates

# Real UTC offsets lie within −12:00…+14:00, so the calendar day of one instant in two
# zones differs by at most two days.
_WESTMOST = timezone(timedelta(hours=-12))
_EASTMOST = timezone(timedelta(hours=14))
_DAY_SLACK = timedelta(days=2)


def _imap_day(day: date) -> date | None:
    """A day IMAP can write (four-digit year)."""
    return day if 1000 <= day.year <= 9999 else None


def _shifted(day: date, delta: timedelta) -> date | None:
    try:
        return _imap_day(day + delta)
    except OverflowError:
        return None


def _push_date(cond: DateTest) -> SearchQuery:
    if cond.source == "sent" and cond.operator == "since":
        return _local(cond, "sent_since: servers read unparsable Date headers as 1970, so SENTSINCE can miss them")
    delta = _DAY_SLACK if cond.operator == "before" else -_DAY_SLACK
    day = _shifted(cond.day, delta)
    if day is None:
        return _local(cond, f"{cond.day}: out of IMAP's date range")
    key = ("SENT" if cond.source == "sent" else "") + cond.operator.upper()
    return _narrowed(cond, [Term((key, day))], f"{key} widened by 2 days: the server picks the day in its own zone")


def _push_age(cond: AgeTest, now: datetime | None) -> SearchQuery:
    if now is None:
        return _local(cond, f"{cond.operator}: no clock given")
    try:
        cutoff = now - timedelta(seconds=cond.seconds)
        if cond.operator == "older_than":  # arrived before the cutoff: before its day in the eastmost zone, + 1
            key, day = "BEFORE", _imap_day(cutoff.astimezone(_EASTMOST).date() + timedelta(days=1))
        else:  # arrived after the cutoff: on or after its day in the westmost zone
            key, day = "SINCE", _imap_day(cutoff.astimezone(_WESTMOST).date())
    except OverflowError:
        day = None
    if day is None:
        return _local(cond, f"{cond.operator}: out of IMAP's date range")
    return _narrowed(cond, [Term((key, day))], f"{cond.operator}: {key} is day-granular; the exact time is checked locally")


# ---------------------------------------------------------------- header strings

_HEADER_KEYS = {"from": "FROM", "to": "TO", "cc": "CC", "bcc": "BCC", "subject": "SUBJECT"}

# Servers search address fields in a re-rendered form (quotes, comments, the separators
# between addresses may differ), so needles for them break at the syntax characters too.
ADDRESS_HEADERS = frozenset({
    "from", "to", "cc", "bcc", "sender", "reply-to", "resent-from", "resent-to", "resent-cc",
    "resent-bcc", "resent-sender", "resent-reply-to", "return-path", "delivered-to", "x-original-to",
    "envelope-to", "errors-to", "mail-followup-to", "mail-reply-to", "disposition-notification-to",
})


def _header_term(name: str, needle: str) -> Term:
    key = _HEADER_KEYS.get(name.lower())
    return Term((key, needle)) if key else Term(("HEADER", name, needle))


def _push_strings(cond: HeaderTest | AddressTest) -> SearchQuery:
    address_like = isinstance(cond, AddressTest) or any(name.lower() in ADDRESS_HEADERS for name in cond.names)
    fragments = [_value_fragment(cond, value, address_like) for value in cond.values]
    notes = tuple(note for value, fragment in zip(cond.values, fragments) if (note := _fragment_note(cond, value, fragment)))
    if not fragments or any(fragment is None for fragment in fragments):
        keys = [_presence(name) for name in cond.names]
    else:
        keys = [_header_term(name, fragment) for name in cond.names for fragment in dict.fromkeys(fragments)]  # type: ignore[arg-type]
    return _narrowed(cond, [any_of(keys)], *notes)


def _value_fragment(cond: HeaderTest | AddressTest, value: str, address_like: bool) -> str | None:
    if isinstance(cond, AddressTest):
        needle = value.rstrip(".") if cond.operator == "domain" else value
        return server_fragment([needle], case_sensitive=cond.case_sensitive, address_like=True)
    if cond.operator == "regex":
        return _regex_fragment(value, cond.case_sensitive, address_like)
    pieces = glob_literals(value) if cond.operator == "matches" else [value]
    return server_fragment(pieces, case_sensitive=cond.case_sensitive, address_like=address_like)


def _fragment_note(cond: HeaderTest | AddressTest, value: str, fragment: str | None) -> str | None:
    what = f"{cond.key} {cond.operator} {value!r}"
    if fragment is None:
        return f"{what}: no part of it is safe to search for; only the header's presence is"
    needle = value.rstrip(".") if cond.operator == "domain" else value
    if fragment == (needle if cond.case_sensitive else needle.casefold()):
        return None
    return f"{what}: the server is sent {fragment!r}, the longest part it finds wherever the rule can match"


def _regex_fragment(pattern: str, case_sensitive: bool, address_like: bool) -> str | None:
    literals, ignore_case = regex_literals(pattern)
    if ignore_case or not case_sensitive:
        # re.IGNORECASE matches "İ" for "i", which servers decompose into "I" + U+0307,
        # so an "i" can only end a piece; non-ASCII literals follow re's simple case
        # mapping, not casefolding, so they are not searched for at all.
        literals = [part for lit in literals for part in re.split(r"[^\x00-\x7f]", lit)]
        literals = [part for lit in literals for part in re.split(r"(?<=[iI])", lit)]
    return server_fragment(literals, case_sensitive=case_sensitive and not ignore_case, address_like=address_like)


def glob_literals(glob: str) -> list[str]:
    """The literal runs a Sieve ``:matches`` pattern requires, in order.

    >>> glob_literals(r"*[PATCH*v\\*2?")
    ['[PATCH', 'v*2']
    """
    runs, current, chars = [], [], iter(glob)
    for char in chars:
        if char in "*?":
            runs.append("".join(current))
            current = []
        else:
            current.append(next(chars, "") if char == "\\" else char)
    runs.append("".join(current))
    return [run for run in runs if run]


def regex_literals(pattern: str) -> tuple[list[str], bool]:
    """Literal runs every match of a Python regex contains, and whether it sets ``(?i)`` itself.

    Only top-level literals count: anything inside a group, a class, a repetition or an
    alternation may be skipped by some match.

    >>> regex_literals(r"^\\[PATCH (v\\d+)?\\] fix(es)?")
    (['[PATCH ', '] fix'], False)
    """
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return [], False
    runs, current = [], []
    for op, arg in parsed:
        if op is sre_parse.LITERAL:
            current.append(chr(arg))
        else:
            runs.append("".join(current))
            current = []
    runs.append("".join(current))
    return [run for run in runs if run], bool(parsed.state.flags & re.IGNORECASE)


# ---------------------------------------------------------------- what a server is sure to find

MIN_FRAGMENT = 3  # a shorter needle matches most headers: the search would cost more than it saves
MAX_PIECE = 64  # longer needles are cut; any part of a needle is as safe as the whole

# White space (servers collapse runs of it), characters an IMAP atom can't hold or that
# imapclient would not quote, and control characters.
_WIRE_BREAK = r"\s\x00-\x1f\x7f-\x9f(){}%*\"\\"
_ADDRESS_BREAK = r"<>,;:\[\]"


def server_fragment(pieces: Sequence[str], *, case_sensitive: bool, address_like: bool) -> str | None:
    """The longest substring of some piece a server finds in every value where the piece occurs.

    The pieces are required parts of a local match (a ``contains`` needle, the literal runs
    of a glob or regex).  Case-insensitive pieces are casefolded, as the local check
    compares them; then the result avoids every character and character sequence where a
    server's comparison (titlecase and decomposition, RFC 5051) disagrees with Unicode
    casefolding.  None when nothing of at least :data:`MIN_FRAGMENT` characters is left.

    >>> server_fragment(["Счёт на оплату"], case_sensitive=False, address_like=False)
    'оплату'
    >>> server_fragment(["Invoice"], case_sensitive=False, address_like=False)  # "ﬁnvoice" folds to "finvoice"
    'voice'
    >>> print(server_fragment(["Straße"], case_sensitive=False, address_like=False))
    None
    >>> server_fragment(["Straße 5"], case_sensitive=True, address_like=False)  # ß may be a raw Latin-1 byte
    'Stra'
    """
    breaks = _WIRE_BREAK + (_ADDRESS_BREAK if address_like else "")
    folded = [piece if case_sensitive else piece.casefold() for piece in pieces]
    words = [word[:MAX_PIECE] for piece in folded for word in re.split(f"[{breaks}]+", piece) if word]
    keep = _sent_as_is if case_sensitive else _folds_as_is
    runs = [run for word in words for run in _runs(word, keep)]
    is_safe = _edges_safe if case_sensitive else _fold_safe
    best = max((_longest_where(run, is_safe) for run in runs), key=len, default="")
    return best if len(best) >= MIN_FRAGMENT else None


def _longest_where(word: str, ok: Callable[[str], bool]) -> str:
    for length in range(len(word), MIN_FRAGMENT - 1, -1):
        for start in range(len(word) - length + 1):
            if ok(word[start : start + length]):
                return word[start : start + length]
    return ""


def _edges_safe(text: str) -> bool:
    """No combining mark at either end: servers decompose and reorder marks (NFKD).

    A needle ending in ``é`` (e + U+0301) misses a value with ``é`` followed by a mark
    that sorts before U+0301; one starting with a mark may be reordered the same way.
    """
    first = unicodedata.normalize("NFKD", text[0])
    last = unicodedata.normalize("NFKD", text[-1])
    return not unicodedata.combining(first[0]) and not unicodedata.combining(last[-1])


def _fold_safe(text: str) -> bool:
    return _edges_safe(text) and not any(_overlaps(text, expansion) for expansion in _relevant_expansions(text))


def _overlaps(text: str, expansion: str) -> bool:
    """Whether a match of ``text`` in a casefolded value could use part of ``expansion``.

    ``expansion`` is the casefold of one character that folds to several (``ß`` → ``ss``);
    servers keep such a character as it is, so a match that touches it is one they miss.
    """
    if expansion in text or text in expansion:
        return True
    return any(text.startswith(expansion[i:]) or text.endswith(expansion[:i]) for i in range(1, len(expansion)))


def _relevant_expansions(text: str) -> list[str]:
    chars = set(text)
    return [expansion for expansion in _casefold_tables()[1] if chars & set(expansion)]


def _runs(word: str, keep: Callable[[str], bool]) -> list[str]:
    """The word split at the characters ``keep`` rejects."""
    runs, current = [], []
    for char in word:
        if keep(char):
            current.append(char)
        else:
            runs.append("".join(current))
            current = []
    runs.append("".join(current))
    return [run for run in runs if run]


# Header lines in raw 8-bit that is not UTF-8 are read as Latin-1 locally (message.py), but
# servers read each such byte as U+FFFD.  So no character that can stand for such a byte,
# as it is or casefolded (µ folds to Greek μ), can be searched for.
_LEGACY_8BIT = frozenset(chr(code) for code in range(0x80, 0x100)) | frozenset(
    chr(code).casefold() for code in range(0x80, 0x100) if len(chr(code).casefold()) == 1
)


def _sent_as_is(char: str) -> bool:
    return char not in _LEGACY_8BIT


def _folds_as_is(char: str) -> bool:
    return char not in _LEGACY_8BIT and _stable(char)


@functools.cache
def _stable(char: str) -> bool:
    """Whether every character that casefolds to ``char`` is one a server folds the same way.

    ASCII is: its only non-ASCII relatives (``ſ``, Kelvin ``K``) fold alike on servers.
    Otherwise each relative must be old (in Unicode 3.2, so every server's tables know it),
    fold to a single character, and not be a singleton decomposition of a character that
    decomposes again (the Ångström sign: U+212B → U+00C5 → A + ring).
    """
    if char.isascii():
        return True
    relatives = (char, *_casefold_tables()[0].get(char, ()))
    return all(_folds_alike(relative) for relative in relatives)


# Cyrillic Extended-C (Unicode 9.0, 2016) holds historic variants of в д о с т ъ ѣ.  Holding
# them to the 3.2 rule would keep most Russian text off the server; servers of the last
# decade fold them (Dovecot 2.3 does), and mail practically never contains them.
_LATE_BUT_KNOWN = range(0x1C80, 0x1C89)


def _folds_alike(char: str) -> bool:
    known = unicodedata.ucd_3_2_0.category(char) != "Cn" or ord(char) in _LATE_BUT_KNOWN
    if not known or len(char.casefold()) != 1:
        return False
    decomposition = unicodedata.decomposition(char)
    if decomposition and " " not in decomposition and not decomposition.startswith("<"):
        return not unicodedata.decomposition(chr(int(decomposition, 16)))
    return True


# No character at or above this code point changes under casefold (the last cased script,
# Adlam, ends at U+1E95F); scanning only below it keeps start-up ~9 times cheaper.  A unit
# test checks the bound against the running Python's Unicode tables.
CASED_LIMIT = 0x20000


@functools.cache
def _casefold_tables() -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """(characters folding to each single character, casefolds longer than one character)."""
    relatives: dict[str, list[str]] = {}
    expansions: set[str] = set()
    for code in range(CASED_LIMIT):
        char = chr(code)
        folded = char.casefold()
        if len(folded) > 1:
            expansions.add(folded)
        elif folded != char:
            relatives.setdefault(folded, []).append(char)
    return {key: tuple(value) for key, value in relatives.items()}, tuple(sorted(expansions))


# ---------------------------------------------------------------- servers without CHARSET UTF-8


def ascii_fallback(query: SearchQuery) -> SearchQuery:
    """The query without non-ASCII arguments, for servers that refuse ``CHARSET UTF-8``.

    A key with non-ASCII text becomes ``ALL`` (dropped from a conjunction, or making its
    ``OR`` match everything), which only widens the result.  Only string tests carry such
    text and they are never exact, so exactness and the residual stay as they were.
    """
    keys = tuple(kept for key in query.keys if (kept := _without_non_ascii(key)) is not None)
    if keys == query.keys:
        return query
    note = "non-ASCII text is not searched: the server refuses CHARSET UTF-8"
    return replace(query, keys=keys, notes=query.notes + (note,))


def _without_non_ascii(key: Key) -> Key | None:
    """The key with non-ASCII parts widened to everything; None means ``ALL``."""
    match key:
        case Term():
            return key if is_ascii_key(key) else None
        case OrKey(left, right):
            new_left, new_right = _without_non_ascii(left), _without_non_ascii(right)
            return None if new_left is None or new_right is None else OrKey(new_left, new_right)
        case NotKey(inner):
            return key if is_ascii_key(inner) else None  # widening under NOT would narrow
        case Group(keys):
            kept = [k for inner in keys if (k := _without_non_ascii(inner)) is not None]
            return group(kept) if kept else None
    raise TypeError(f"not a search key: {key!r}")


# ---------------------------------------------------------------- rule order


def volatile_flags_before(rules: Sequence[Rule]) -> list[frozenset[str]]:
    """For each rule, the flag keys that some earlier rule may change for the same message."""
    result, changed = [], frozenset[str]()
    for rule in rules:
        result.append(changed)
        changed = changed | _changed_flags(rule)
    return result


def _changed_flags(rule: Rule) -> frozenset[str]:
    keys: set[str] = set()
    for action in rule.then:
        match action:
            case AddFlags(flags=flags) | RemoveFlags(flags=flags):
                keys.update(flag_key(flag) for flag in flags)
            case Delete():
                keys.add(flag_key("\\Deleted"))
            case Reply():  # the executor marks a replied message \Answered
                keys.add(flag_key("\\Answered"))
    return frozenset(keys)


# ---------------------------------------------------------------- what the local check reads


def fetch_needs(cond: Condition) -> FetchNeeds:
    """What the local matcher reads for ``cond`` beyond size, INTERNALDATE and flags."""
    match cond:
        case All(children) | Any(children):
            return functools.reduce(FetchNeeds.__or__, map(fetch_needs, children), FetchNeeds())
        case Not(child):
            return fetch_needs(child)
        case HeaderTest(names=names) | AddressTest(names=names) | HeaderExists(names=names) | CountTest(names=names):
            return FetchNeeds(headers=frozenset(name.lower() for name in names))
        case BodyTest(scope=scope):
            return FetchNeeds(body=True, all_headers=scope == "text")
        case AttachmentTest():
            return FetchNeeds(structure=True)
        case AttachmentPartTest() | MimeHeaderTest():
            return FetchNeeds(body=True)
        case DateTest(source="sent") | DatePartTest(source="sent"):
            return FetchNeeds(headers=frozenset({"date"}))
        case SizeTest() | AgeTest() | DateTest() | FlagTest():
            return FetchNeeds()  # size, INTERNALDATE and flags come with every fetch
    raise TypeError(f"not a condition: {cond!r}")


def reply_fetch_needs() -> FetchNeeds:
    """A reply's template may show ``message.text``, and the RFC 3834 guards read any ``List-*`` header."""
    return FetchNeeds(all_headers=True, body=True)


# ---------------------------------------------------------------- human rendering


def render_imap(rule: Rule, *, volatile_flags: frozenset[str] = frozenset(), now: datetime | None = None) -> str:
    """The SEARCH a rule sends, as a person reads it, and what stays local.

    >>> from mailrules.model import FlagTest, Rule
    >>> print(render_imap(Rule("r", FlagTest("$Invoice", True), ())))
    UID SEARCH KEYWORD $Invoice
    exact: the server's answer is final
    """
    query = to_search(rule.when, volatile_flags=volatile_flags, now=now)
    charset = "CHARSET UTF-8 " if query.needs_utf8 else ""
    lines = [f"UID SEARCH {charset}{render_criteria(query.criteria)}"]
    if query.exact:
        lines.append("exact: the server's answer is final")
    else:
        lines.append(f"checked locally: {describe(query.residual)}")  # type: ignore[arg-type]
    lines += [f"note: {note}" for note in query.notes]
    return "\n".join(lines)


def render_criteria(criteria: Sequence[object]) -> str:
    """Criteria as IMAP text: strings quoted, days as ``15-Jan-2025``, nested lists in parentheses."""
    return " ".join(_render_token(token) for token in criteria)


_ATOM = re.compile(r"[A-Z]+|\$?[A-Za-z0-9_.$-]+")


def _render_token(token: object) -> str:
    if isinstance(token, (list, tuple)):
        return "(" + render_criteria(token) + ")"
    if isinstance(token, date):
        return token.strftime("%d-%b-%Y")
    if isinstance(token, int):
        return str(token)
    text = str(token)
    if text and _ATOM.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def describe(cond: Condition) -> str:
    """A compact, rule-file-like text of a condition, e.g. ``any(from contains 'x', seen)``."""
    match cond:
        case All(children):
            return "all(" + ", ".join(map(describe, children)) + ")"
        case Any(children):
            return "any(" + ", ".join(map(describe, children)) + ")"
        case Not(child):
            return f"not {describe(child)}"
        case HeaderTest(key=key, operator=op, values=values, case_sensitive=cs) | AddressTest(
            key=key, operator=op, values=values, case_sensitive=cs
        ):
            position = f" (occurrence {cond.index})" if cond.index is not None else ""
            return f"{key}{position} {op} {_alternatives(values)}{' (case-sensitive)' if cs else ''}"
        case HeaderExists(key=key, present=present):
            return f"{key} exists: {str(present).lower()}"
        case CountTest(key=key, relation=relation, number=number):
            return f"count {key} {relation} {number}"
        case BodyTest(scope=scope, operator=op, values=values):
            return f"{scope} {op} {_alternatives(values)}"
        case SizeTest(operator=op, size=size):
            return f"{op} {size}"
        case AgeTest(operator=op, seconds=seconds):
            return f"{op} {_duration(seconds)}"
        case DateTest(source=source, operator=op, day=day):
            return f"{'sent_' if source == 'sent' else ''}{op} {day.isoformat()}"
        case DatePartTest(source=source, checks=checks, zone=zone):
            parts = ", ".join(_part_text(check) for check in checks)
            return f"{'sent' if source == 'sent' else 'arrived'} {parts} ({zone})"
        case FlagTest(flag=flag, present=present):
            return flag if present else f"not {flag}"
        case AttachmentTest(present=present):
            return f"has_attachment: {str(present).lower()}"
        case AttachmentPartTest():
            keys = [f"filename {cond.filename_operator} {_alternatives(cond.filenames)}"] if cond.filename_operator else []
            keys += [f"type {'|'.join(cond.types)}"] if cond.types else []
            keys += [f"{k} {v}" for k, v in (("larger", cond.larger), ("smaller", cond.smaller)) if v is not None]
            return f"attachment({', '.join(keys)})"
        case MimeHeaderTest(name=name, operator=op, values=values, present=present):
            shown = str(present).lower() if op == "exists" else _alternatives(values)
            return f"mime_header {name} {op} {shown}"
    raise TypeError(f"not a condition: {cond!r}")


def _part_text(check: PartCheck) -> str:
    values = [WEEKDAYS[value] for value in check.values] if check.part == "weekday" else list(check.values)
    shown = [f"{check.part} {'|'.join(map(str, values))}"] if values else []
    return " ".join(shown + [f"{check.part} {relation} {number}" for relation, number in check.relations])


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _alternatives(values: Sequence[str]) -> str:
    return " or ".join(repr(value) for value in values)
