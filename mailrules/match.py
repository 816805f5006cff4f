"""The exact meaning of a condition on one message: the matcher that always has the last word.

Server-side SEARCH only narrows the candidates; whatever it returns is decided here.
``matches`` is the fast path the planner runs per message; ``explain`` evaluates every
node (no short-circuit) and says why each holds or not.  Both share the same leaf checks,
so they cannot disagree.

Case-insensitive comparison is Unicode casefolding (``ß`` equals ``SS``).  For ``regex``
that needs care: casefolding a pattern would corrupt escapes such as ``\\S``, and a plain
``re.IGNORECASE`` search does not fold ``ß`` to ``ss``.  A case-insensitive regex therefore
matches when it finds a match in the value under ``re.IGNORECASE``, or when the pattern
with its literal text casefolded (escapes untouched) finds one in the casefolded value.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
import zoneinfo
from datetime import date, datetime, timedelta, timezone, tzinfo

from mailrules import model
from mailrules.message import Address, AttachmentInfo, MessageView, parse_addresses
from mailrules.model import Condition, flag_key


@dataclass(frozen=True, slots=True)
class EvalContext:
    """What evaluation needs besides the message: the clock for age tests (aware; naive means UTC)."""

    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    subaddress_separator: str = "+"  # RFC 5233: each of these characters separates user and detail

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            object.__setattr__(self, "now", self.now.replace(tzinfo=timezone.utc))


@dataclass(frozen=True, slots=True)
class Trace:
    """Why a condition node holds or not, with the traces of its children."""

    node: Condition
    result: bool
    detail: str
    children: tuple[Trace, ...] = ()

    def lines(self, indent: str = "") -> list[str]:
        """An indented rendering, one node per line: ``yes  From: ... contains ...``."""
        own = f"{indent}{'yes' if self.result else 'no '}  {self.detail}"
        return [own, *(line for child in self.children for line in child.lines(indent + "    "))]


# ---------------------------------------------------------------- string operators

Predicate = Callable[[str, str], bool]  # (value, casefolded value) -> match
Found = tuple[bool, object]  # a leaf's result and its evidence (the value that matched, the day compared...)


_ANY_RUN, _ANY_ONE = object(), object()


def glob_tokens(glob: str) -> tuple[object, ...]:
    """Sieve ``:matches``: ``*`` any run, ``?`` one character, ``\\`` makes the next character literal.

    >>> [t if isinstance(t, str) else {_ANY_RUN: "*", _ANY_ONE: "?"}[t] for t in glob_tokens(r"a*\\?")]
    ['a', '*', '?']
    """
    tokens: list[object] = []
    chars = iter(glob)
    for char in chars:
        if char == "\\":
            tokens.append(next(chars, "\\"))
        else:
            tokens.append(_ANY_RUN if char == "*" else _ANY_ONE if char == "?" else char)
    return tuple(tokens)


def glob_match(tokens: tuple[object, ...], text: str) -> bool:
    """Whether the whole ``text`` matches, in O(len(text) x len(tokens)) at worst.

    A regex like ``.*a.*a.*b`` backtracks exponentially on a long ``aaa…`` header; this
    keeps only the last ``*`` to fall back to, which is exact for ``*``/``?`` patterns.

    >>> glob_match(glob_tokens("*.pdf"), "invoice.pdf"), glob_match(glob_tokens("a?c"), "abbc")
    (True, False)
    """
    position = index = 0
    star, resume = -1, 0
    while position < len(text):
        token = tokens[index] if index < len(tokens) else None
        if token is _ANY_ONE or (token is not None and token == text[position]):
            index, position = index + 1, position + 1
        elif token is _ANY_RUN:
            star, resume, index = index, position, index + 1
        elif star >= 0:
            resume += 1
            index, position = star + 1, resume
        else:
            return False
    return all(token is _ANY_RUN for token in tokens[index:])


def casefold_regex(pattern: str) -> str:
    """Casefold a regex's literal text but not its escapes (``\\S`` must stay ``\\S``).

    >>> casefold_regex(r"Straße\\S+\\N{DIGIT ONE}")
    'strasse\\\\S+\\\\N{DIGIT ONE}'
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            end = pattern.find("}", i) + 1 if pattern.startswith("\\N{", i) else i + 2
            out.append(pattern[i : end or len(pattern)])
            i = end or len(pattern)
        else:
            out.append(pattern[i].casefold())
            i += 1
    return "".join(out)


# A rule's regex may backtrack catastrophically (``(a|aa)+$``); Python's re can't be
# interrupted, the ``regex`` engine (re-compatible in its VERSION0 mode) takes a time limit.
REGEX_SECONDS = 0.25


class RegexTimeout(Exception):
    """A rule's regex ran out of time on a value: the rule can't be decided for this message."""

    def __init__(self, pattern: str):
        super().__init__(f"regex /{pattern}/ took more than {REGEX_SECONDS} s and was abandoned")
        self.pattern = pattern


Search = Callable[[str], bool]


def _compile(pattern: str, flags: int) -> Search | None:
    import regex

    try:
        compiled = regex.compile(pattern, flags | regex.VERSION0)
    except (regex.error, re.error, OverflowError, RecursionError, ValueError):
        return None

    def search(text: str) -> bool:
        try:
            return compiled.search(text, timeout=REGEX_SECONDS) is not None
        except TimeoutError:
            raise RegexTimeout(pattern) from None

    return search


def _never(value: str, folded: str) -> bool:
    return False


def _regex_predicate(pattern: str, case_sensitive: bool, multiline: bool) -> Predicate:
    flags = re.MULTILINE if multiline else 0
    if case_sensitive:
        exact = _compile(pattern, flags)
        return (lambda value, folded: exact(value)) if exact else _never
    plain = _compile(pattern, flags | re.IGNORECASE)
    if plain is None:  # the loader rejects invalid patterns; here they simply never match
        return _never
    folded_pattern = _compile(casefold_regex(pattern), flags | re.IGNORECASE)
    if folded_pattern is None:  # e.g. [Z-a] is a valid range, [z-a] is not
        return lambda value, folded: plain(value)
    return lambda value, folded: plain(value) or folded_pattern(folded)


@functools.lru_cache(maxsize=4096)
def string_predicate(operator: str, pattern: str, case_sensitive: bool, multiline: bool = False) -> Predicate:
    """A compiled test of one string operator, cached so each pattern is compiled once per process."""
    if operator == "regex":
        return _regex_predicate(pattern, case_sensitive, multiline)
    wanted = pattern if case_sensitive else pattern.casefold()
    if operator == "contains":
        return (lambda value, folded: wanted in value) if case_sensitive else (lambda value, folded: wanted in folded)
    if operator == "is":
        return (lambda value, folded: wanted == value) if case_sensitive else (lambda value, folded: wanted == folded)
    if operator == "matches":
        tokens = glob_tokens(wanted)
        if case_sensitive:
            return lambda value, folded: glob_match(tokens, value)
        return lambda value, folded: glob_match(tokens, folded)
    raise ValueError(f"unknown string operator {operator!r}")


@functools.lru_cache(maxsize=4096)
def predicates(
    operator: str, patterns: tuple[str, ...], case_sensitive: bool, multiline: bool = False
) -> tuple[tuple[str, Predicate], ...]:
    """(pattern, predicate) for each pattern of one test; cached per test, the hot path looks it up once."""
    return tuple((pattern, string_predicate(operator, pattern, case_sensitive, multiline)) for pattern in patterns)


def first_hit(
    label: str, values: Iterable[str], tests: tuple[tuple[str, Predicate], ...], case_sensitive: bool
) -> tuple[str, str, str] | None:
    """(label, value, pattern) for the first value some pattern matches, or None."""
    for value in values:
        folded = value if case_sensitive else value.casefold()
        for pattern, predicate in tests:
            if predicate(value, folded):
                return label, value, pattern
    return None


# ---------------------------------------------------------------- header tests


def list_identifier(value: str) -> str:
    """RFC 2919: the identifier inside ``<...>``, or the whole value when there are no angle brackets.

    >>> list_identifier("Python core developers <python-dev.python.org>")
    'python-dev.python.org'
    """
    start = value.rfind("<")
    end = value.find(">", start + 1)
    if start < 0 or end < 0:
        return value.strip()
    return value[start + 1 : end].strip()


def occurrence(values: list[str], index: int | None) -> list[str]:
    """All values, or only the N-th (1 = first, -1 = last); none when there is no such occurrence."""
    if index is None:
        return values
    position = index - 1 if index > 0 else len(values) + index
    return [values[position]] if 0 <= position < len(values) else []


ENVELOPE_KEYS = frozenset({"envelope_to", "envelope_from"})


def envelope_header(names: Sequence[str], msg: MessageView) -> tuple[str, str] | None:
    """The header that records an envelope address: the topmost of the first named header present.

    The delivery agent adds ``Delivered-To``/``Return-Path`` on top, so the topmost one is
    this mailbox's delivery; ``X-Original-To`` stands in when there is no ``Delivered-To``.
    """
    for name in names:
        values = msg.raw_header_values(name)
        if values:
            return name, values[0]
    return None


def _envelope_addresses(names: Sequence[str], msg: MessageView, name: str) -> list[Address]:
    found = envelope_header(names, msg)
    return parse_addresses(found[1]) if found is not None and found[0] == name else []


def _tested_values(cond: model.HeaderTest, msg: MessageView, name: str) -> list[str]:
    if cond.key in ENVELOPE_KEYS:  # the address itself, as Sieve's envelope test compares it
        return [address.address for address in _envelope_addresses(cond.names, msg, name)]
    values = occurrence(msg.header_values(name), cond.index)
    return [list_identifier(value) for value in values] if cond.list_id else values


def _check_header(cond: model.HeaderTest, msg: MessageView, ctx: EvalContext) -> Found:
    tests = predicates(cond.operator, cond.values, cond.case_sensitive)
    for name in cond.names:
        hit = first_hit(name, _tested_values(cond, msg, name), tests, cond.case_sensitive)
        if hit is not None:
            return True, hit
    return False, None


def _check_exists(cond: model.HeaderExists, msg: MessageView, ctx: EvalContext) -> Found:
    if cond.key in ENVELOPE_KEYS:
        found = envelope_header(cond.names, msg)
        present = [found[0]] if found is not None and parse_addresses(found[1]) else []
        return bool(present) == cond.present, present
    present = [name for name in cond.names if msg.raw_header_values(name)]
    return bool(present) == cond.present, present


# ---------------------------------------------------------------- address tests


def _fold(text: str, case_sensitive: bool) -> str:
    return text if case_sensitive else text.casefold()


def domain_within(domain: str, wanted: str) -> bool:
    """Equal, or a subdomain: ``a.github.com`` is within ``github.com``, ``evilgithub.com`` is not.

    >>> domain_within("a.github.com", "github.com"), domain_within("evilgithub.com", "github.com")
    (True, False)
    """
    domain, wanted = domain.rstrip("."), wanted.rstrip(".")
    return bool(wanted) and (domain == wanted or domain.endswith("." + wanted))


def split_subaddress(localpart: str, separators: str) -> tuple[str, str | None]:
    """RFC 5233 user and detail: split at the first of the separator characters (as Dovecot's recipient_delimiter).

    >>> split_subaddress("alice+github+x", "+"), split_subaddress("bob", "+-"), split_subaddress("carol+", "+")
    (('alice', 'github+x'), ('bob', None), ('carol', ''))
    """
    cut = min((index for index in map(localpart.find, separators) if index >= 0), default=-1)
    return (localpart, None) if cut < 0 else (localpart[:cut], localpart[cut + 1 :])


def address_part(address: Address, operator: str, separator: str = "+") -> str | None:
    """The part of an address an address operator tests; None when the address has no such part."""
    if operator in _PART_OPERATORS and not address.valid:
        return None
    if operator in ("user", "detail"):
        user, detail = split_subaddress(address.localpart, separator)
        return user if operator == "user" else detail
    return {
        "address": address.address,
        "domain": address.domain,
        "localpart": address.localpart,
        "display_name": address.display_name,
    }[operator]


# The operators that take an address apart; an invalid address has no parts to take.
_PART_OPERATORS = frozenset({"domain", "localpart", "user", "detail"})


def address_operator_holds(
    address: Address, operator: str, wanted: str, case_sensitive: bool, separator: str = "+"
) -> bool:
    found = address_part(address, operator, separator)
    if found is None:
        return False
    part = _fold(found, case_sensitive)
    wanted = _fold(wanted, case_sensitive)
    if operator == "domain":
        return domain_within(part, wanted)
    if operator == "display_name":
        return wanted in part
    return part == wanted


def addresses_of(cond: model.AddressTest | model.CountTest, msg: MessageView, name: str) -> list[Address]:
    if cond.key in ENVELOPE_KEYS:
        return _envelope_addresses(cond.names, msg, name)
    index = getattr(cond, "index", None)
    if index is None:
        return msg.addresses(name)
    return [address for raw in occurrence(msg.raw_header_values(name), index) for address in parse_addresses(raw)]


def _check_address(cond: model.AddressTest, msg: MessageView, ctx: EvalContext) -> Found:
    for name in cond.names:
        for address in addresses_of(cond, msg, name):
            for wanted in cond.values:
                if address_operator_holds(address, cond.operator, wanted, cond.case_sensitive, ctx.subaddress_separator):
                    return True, (name, address, wanted)
    return False, None


# ---------------------------------------------------------------- body, size, dates, flags, structure


def _body_of(cond: model.BodyTest, msg: MessageView) -> str:
    return msg.text() if cond.scope == "text" else msg.body_text()


def _check_body(cond: model.BodyTest, msg: MessageView, ctx: EvalContext) -> Found:
    if cond.scope == "body" and not msg.has_body():  # nothing to search, so not even "" is found
        return False, None
    tests = predicates(cond.operator, cond.values, cond.case_sensitive, True)  # ^ and $ at line boundaries
    hit = first_hit(cond.scope, (_body_of(cond, msg),), tests, cond.case_sensitive)
    return hit is not None, hit


_RELATIONS: dict[str, Callable[[int, int], bool]] = {
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
}


def count_of(cond: model.CountTest, msg: MessageView) -> int:
    """Occurrences of the headers, or valid addresses in them (as Sieve's address :count counts)."""
    if cond.addresses:
        return sum(address.valid for name in cond.names for address in addresses_of(cond, msg, name))
    return sum(len(msg.raw_header_values(name)) for name in cond.names)


def _check_count(cond: model.CountTest, msg: MessageView, ctx: EvalContext) -> Found:
    number = count_of(cond, msg)
    return _RELATIONS[cond.relation](number, cond.number), number


def _check_size(cond: model.SizeTest, msg: MessageView, ctx: EvalContext) -> Found:
    if cond.operator == "larger":
        return msg.size > cond.size, None
    return msg.size < cond.size, None


def _check_age(cond: model.AgeTest, msg: MessageView, ctx: EvalContext) -> Found:
    if msg.internaldate is None:  # an unknown arrival time is neither old nor new
        return False, None
    cutoff = ctx.now - timedelta(seconds=cond.seconds)
    if cond.operator == "older_than":
        return msg.internaldate < cutoff, cutoff
    return msg.internaldate > cutoff, cutoff


def _moment_of(cond: model.DateTest, msg: MessageView) -> datetime | None:
    return msg.internaldate if cond.source == "arrival" else msg.sent_date()


def day_compare(day: date, operator: str, wanted: date) -> bool:
    """IMAP ``BEFORE`` is strictly before the day, ``SINCE`` is on or after it."""
    return day < wanted if operator == "before" else day >= wanted


def _check_date(cond: model.DateTest, msg: MessageView, ctx: EvalContext) -> Found:
    moment = _moment_of(cond, msg)
    if moment is None:
        return False, None
    day = moment.date()  # the calendar day in the timestamp's own zone offset, as IMAP SEARCH uses
    return day_compare(day, cond.operator, cond.day), day


_OFFSET = re.compile(r"([+-])([01][0-9]|2[0-3])([0-5][0-9])")


def fixed_offset(zone: str) -> timezone | None:
    """``+0100`` / ``-0530`` as a zone, ``UTC`` as UTC; None for any other name."""
    if zone.upper() in ("UTC", "Z", "ETC/UTC", "GMT"):
        return timezone.utc
    found = _OFFSET.fullmatch(zone)
    if found is None:
        return None
    minutes = int(found.group(2)) * 60 + int(found.group(3))
    return timezone(timedelta(minutes=-minutes if found.group(1) == "-" else minutes))


def zone_of(zone: str) -> tzinfo | None:
    """The zone a date-part test reads in: ``original`` (None: keep the timestamp's own), a fixed offset, or IANA.

    Raises ``ValueError`` for a name that is none of these.
    """
    if zone == "original":
        return None
    fixed = fixed_offset(zone)
    if fixed is not None:
        return fixed
    try:
        return zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {zone!r}: use an IANA name (Europe/Berlin), UTC, +hhmm or original") from None


def date_part(moment: datetime, part: str) -> int:
    """A date part as a number; weekday counts Monday 0 to Sunday 6."""
    return moment.weekday() if part == "weekday" else getattr(moment, part)


def part_check_holds(check: model.PartCheck, moment: datetime) -> bool:
    value = date_part(moment, check.part)
    if check.values and value not in check.values:
        return False
    return all(_RELATIONS[relation](value, number) for relation, number in check.relations)


def _date_parts_moment(cond: model.DatePartTest, msg: MessageView) -> datetime | None:
    moment = msg.internaldate if cond.source == "arrival" else msg.sent_date()
    if moment is None:
        return None
    zone = zone_of(cond.zone)
    return moment if zone is None else moment.astimezone(zone)


def _check_date_parts(cond: model.DatePartTest, msg: MessageView, ctx: EvalContext) -> Found:
    moment = _date_parts_moment(cond, msg)
    if moment is None:
        return False, None
    return all(part_check_holds(check, moment) for check in cond.checks), moment


def _check_flag(cond: model.FlagTest, msg: MessageView, ctx: EvalContext) -> Found:
    has = flag_key(cond.flag) in msg.flag_keys()
    return has == cond.present, has


def _check_attachment(cond: model.AttachmentTest, msg: MessageView, ctx: EvalContext) -> Found:
    has = msg.has_attachment()
    return has == cond.present, has


def type_matches(content_type: str, wanted: str) -> bool:
    """``application/pdf`` exactly, ``image/*`` or ``image`` for any subtype."""
    if "/" not in wanted or wanted.endswith("/*"):
        return content_type.split("/")[0] == wanted.split("/")[0]
    return content_type == wanted


def attachment_fits(cond: model.AttachmentPartTest, part: AttachmentInfo) -> bool:
    if cond.filename_operator is not None:
        tests = predicates(cond.filename_operator, cond.filenames, cond.case_sensitive)
        if first_hit("filename", (part.filename,), tests, cond.case_sensitive) is None:
            return False
    if cond.types and not any(type_matches(part.content_type, wanted) for wanted in cond.types):
        return False
    if cond.larger is not None and not part.size > cond.larger:
        return False
    return cond.smaller is None or part.size < cond.smaller


def _check_attachment_parts(cond: model.AttachmentPartTest, msg: MessageView, ctx: EvalContext) -> Found:
    for part in msg.attachments():
        if attachment_fits(cond, part):
            return True, part
    return False, None


def _check_mime_header(cond: model.MimeHeaderTest, msg: MessageView, ctx: EvalContext) -> Found:
    wanted = cond.name.lower()
    values = [value for headers in msg.part_headers() for name, value in headers if name.lower() == wanted]
    if cond.operator == "exists":
        return bool(values) == cond.present, values
    hit = first_hit(cond.name, values, predicates(cond.operator, cond.values, cond.case_sensitive), cond.case_sensitive)
    return hit is not None, hit if hit is not None else values


# Each leaf type's check; the dict is keyed by type, so every entry takes its own node type.
_CHECKS: dict[type, Callable[..., Found]] = {
    model.HeaderTest: _check_header,
    model.AddressTest: _check_address,
    model.HeaderExists: _check_exists,
    model.CountTest: _check_count,
    model.BodyTest: _check_body,
    model.SizeTest: _check_size,
    model.AgeTest: _check_age,
    model.DateTest: _check_date,
    model.DatePartTest: _check_date_parts,
    model.FlagTest: _check_flag,
    model.AttachmentTest: _check_attachment,
    model.AttachmentPartTest: _check_attachment_parts,
    model.MimeHeaderTest: _check_mime_header,
}


# ---------------------------------------------------------------- evaluation


def matches(cond: Condition, msg: MessageView, ctx: EvalContext) -> bool:
    """Whether ``cond`` holds for ``msg`` (short-circuits; the planner's fast path).

    Raises ``message.NotFetched`` if the condition needs the body of a header-only view.
    """
    kind = type(cond)
    if kind is model.All:
        for child in cond.children:  # type: ignore[union-attr]
            if not matches(child, msg, ctx):
                return False
        return True
    if kind is model.Any:
        for child in cond.children:  # type: ignore[union-attr]
            if matches(child, msg, ctx):
                return True
        return False
    if kind is model.Not:
        return not matches(cond.child, msg, ctx)  # type: ignore[union-attr]
    return _CHECKS[kind](cond, msg, ctx)[0]


def explain(cond: Condition, msg: MessageView, ctx: EvalContext) -> Trace:
    """Evaluate every node of ``cond`` and say why each holds or not."""
    if isinstance(cond, (model.All, model.Any)):
        children = tuple(explain(child, msg, ctx) for child in cond.children)
        return _combine(cond, children)
    if isinstance(cond, model.Not):
        child = explain(cond.child, msg, ctx)
        detail = f"not: the condition below {'holds' if child.result else 'fails'}"
        return Trace(cond, not child.result, detail, (child,))
    found = _CHECKS[type(cond)](cond, msg, ctx)
    return Trace(cond, found[0], describe(cond, msg, ctx, found))


def _combine(cond: model.All | model.Any, children: tuple[Trace, ...]) -> Trace:
    held = sum(child.result for child in children)
    if isinstance(cond, model.All):
        result = held == len(children)
        detail = f"all of {len(children)} hold" if result else f"all: {len(children) - held} of {len(children)} fail"
    else:
        result = held > 0
        detail = f"any: {held} of {len(children)} hold" if result else f"any: none of {len(children)} hold"
    return Trace(cond, result, detail, children)


# ---------------------------------------------------------------- explanations


def _short(text: str, limit: int = 80) -> str:
    """A value from the message, quoted as the user would write it (not a Python repr)."""
    return _quoted(text if len(text) <= limit else text[: limit - 1] + "…")


def _quoted(text: str) -> str:
    # Escaped as a repr would, but only what can't be shown: a value comes from the sender.
    shown = "".join(char if char.isprintable() else char.encode("unicode_escape", "backslashreplace").decode("ascii")
                    for char in text)
    return f'"{shown}"'


def _listing(texts: Sequence[str], limit: int) -> str:
    shown = ", ".join(_short(text, 60) for text in texts[:limit])
    return shown + (", …" if len(texts) > limit else "")


def _names(names: Sequence[str]) -> str:
    return ", ".join(names)


def _wanted(values: Sequence[str], case_sensitive: bool, operator: str = "") -> str:
    """The rule's values as written: a regex between slashes, anything else in quotes."""
    shown = (f"/{value}/" if operator == "regex" else _quoted(value) for value in values)
    return " or ".join(shown) + (" (case-sensitive)" if case_sensitive else "")


def _describe_header(cond: model.HeaderTest, msg: MessageView, ctx: EvalContext, found: Found) -> str:
    what = "list identifier " if cond.list_id else ""
    if found[0]:
        name, value, pattern = found[1]  # type: ignore[misc]
        return f"{_position(cond.index)}{name}: {what}{_short(value)} {cond.operator} {_wanted([pattern], cond.case_sensitive, cond.operator)}"
    values = [value for name in cond.names for value in _tested_values(cond, msg, name)]
    if not values:
        return f"{_position(cond.index)}{_names(cond.names)}: absent"
    wanted = _wanted(cond.values, cond.case_sensitive, cond.operator)
    return f"{_position(cond.index)}{_names(cond.names)}: no {what}value {cond.operator} {wanted} ({_listing(values, 3)})"


_ADDRESS_PHRASES = {
    "address": "address {part} is {wanted}",
    "domain": "domain {part} is or is under {wanted}",
    "localpart": "local part {part} is {wanted}",
    "user": "user {part} is {wanted}",
    "detail": "detail {part} is {wanted}",
    "display_name": "display name {part} contains {wanted}",
}


def _describe_address(cond: model.AddressTest, msg: MessageView, ctx: EvalContext, found: Found) -> str:
    if found[0]:
        name, address, wanted = found[1]  # type: ignore[misc]
        part = address_part(address, cond.operator, ctx.subaddress_separator) or ""
        phrase = _ADDRESS_PHRASES[cond.operator].format(part=_quoted(part), wanted=_wanted([wanted], cond.case_sensitive))
        return f"{_position(cond.index)}{name}: {phrase}"
    if not any(msg.raw_header_values(name) for name in cond.names):
        return f"{_position(cond.index)}{_names(cond.names)}: absent"
    addresses = [address for name in cond.names for address in addresses_of(cond, msg, name)]
    if not addresses:
        return f"{_position(cond.index)}{_names(cond.names)}: no parseable address"
    parts = [part for address in addresses if (part := address_part(address, cond.operator, ctx.subaddress_separator))
             is not None]
    if not parts:
        return f"{_position(cond.index)}{_names(cond.names)}: no address has a {cond.operator.replace('_', ' ')} ({_listing([a.address for a in addresses], 5)})"
    wanted = _wanted(cond.values, cond.case_sensitive)
    return f"{_position(cond.index)}{_names(cond.names)}: no {cond.operator} matches {wanted} ({_listing(parts, 5)})"


_RELATION_WORDS = {"gt": "more than", "ge": "at least", "lt": "fewer than", "le": "at most", "eq": "exactly",
                   "ne": "other than"}


def _describe_count(cond: model.CountTest, msg: MessageView, ctx: EvalContext, found: Found) -> str:
    what = "addresses" if cond.addresses else "occurrences"
    verdict = "" if found[0] else "not "
    return f"{_names(cond.names)}: {found[1]} {what}, {verdict}{_RELATION_WORDS[cond.relation]} {cond.number}"


def _position(index: int | None) -> str:
    if index is None:
        return ""
    return {1: "first ", -1: "last "}.get(index, f"occurrence {index} of ")


def _describe_exists(cond: model.HeaderExists, msg: MessageView, ctx: EvalContext, found: Found) -> str:
    present: list[str] = found[1]  # type: ignore[assignment]
    return f"{_names(present)}: present" if present else f"{_names(cond.names)}: absent"


def _describe_body(cond: model.BodyTest, msg: MessageView, ctx: EvalContext, found: Found) -> str:
    if found[0]:
        pattern = found[1][2]  # type: ignore[index]
        return f"{cond.scope} {cond.operator} {_wanted([pattern], cond.case_sensitive, cond.operator)}"
    if cond.scope == "body" and not msg.has_body():
        return "the message ends after its header: it has no body"
    return f"{cond.scope} has no {cond.operator} match for {_wanted(cond.values, cond.case_sensitive, cond.operator)}"


def _describe_size(cond: model.SizeTest, msg: MessageView, ctx: EvalContext, found: Found) -> str:
    from mailrules.units import size_text

    verdict = "is" if found[0] else "is not"
    return f"size {msg.size:,} bytes {verdict} {cond.operator} than {size_text(cond.size)}"


def _describe_age(cond: model.AgeTest, msg: MessageView, ctx: EvalContext, found: Found) -> str:
    if msg.internaldate is None:
        return "arrival time unknown"
    from mailrules.units import age_text, duration_text

    age = age_text((ctx.now - msg.internaldate).total_seconds())
    wanted = f"{cond.operator.replace('_', ' ')} {duration_text(cond.seconds)}"
    arrived = msg.internaldate.astimezone(timezone.utc)
    return f"arrived {arrived:%Y-%m-%d %H:%M} UTC, {age} ago: {'' if found[0] else 'not '}{wanted}"


def _describe_date(cond: model.DateTest, msg: MessageView, ctx: EvalContext, found: Found) -> str:
    if found[1] is None:
        return "arrival time unknown" if cond.source == "arrival" else "no readable Date header"
    what = "arrival day" if cond.source == "arrival" else "sent day (Date header)"
    return f"{what} {found[1]} is {'' if found[0] else 'not '}{cond.operator} {cond.day.isoformat()}"


def _describe_date_parts(cond: model.DatePartTest, msg: MessageView, ctx: EvalContext, found: Found) -> str:
    if found[1] is None:
        return "arrival time unknown" if cond.source == "arrival" else "no readable Date header"
    moment: datetime = found[1]  # type: ignore[assignment]
    what = "arrived" if cond.source == "arrival" else "sent"
    zone = "its own zone" if cond.zone == "original" else cond.zone
    shown = f"{model.WEEKDAYS[moment.weekday()].capitalize()} {moment:%Y-%m-%d %H:%M} ({zone})"
    return f"{what} {shown}: {'' if found[0] else 'not '}{_parts_text(cond.checks)}"


def _parts_text(checks: Sequence[model.PartCheck]) -> str:
    texts = []
    for check in checks:
        shown = [model.WEEKDAYS[value] for value in check.values] if check.part == "weekday" else check.values
        words = ([f"{check.part} {' or '.join(map(str, shown))}"] if check.values else []) + [
            f"{check.part} {_RELATION_WORDS[relation]} {number}" for relation, number in check.relations]
        texts.extend(words)
    return ", ".join(texts)


def _describe_flag(cond: model.FlagTest, msg: MessageView, ctx: EvalContext, found: Found) -> str:
    return f"flag {cond.flag} is {'set' if found[1] else 'not set'}"


def _describe_attachment_parts(cond: model.AttachmentPartTest, msg: MessageView, ctx: EvalContext, found: Found) -> str:
    from mailrules.units import size_text

    if found[0]:
        part: AttachmentInfo = found[1]  # type: ignore[assignment]
        return f"attachment {_quoted(part.filename)} ({part.content_type}, {size_text(part.size)}) fits"
    parts = msg.attachments()
    if not parts:
        return "has no attachment"
    shown = _listing([f"{part.filename} ({part.content_type}, {size_text(part.size)})" for part in parts], 3)
    return f"no attachment fits ({shown})"


def _describe_mime_header(cond: model.MimeHeaderTest, msg: MessageView, ctx: EvalContext, found: Found) -> str:
    if cond.operator == "exists":
        return f"{cond.name} in some MIME part: {'present' if found[1] else 'absent'}"
    if found[0]:
        name, value, pattern = found[1]  # type: ignore[misc]
        return f"MIME part {name}: {_short(value)} {cond.operator} {_wanted([pattern], cond.case_sensitive, cond.operator)}"
    values: list[str] = found[1]  # type: ignore[assignment]
    if not values:
        return f"{cond.name}: absent from every MIME part"
    wanted = _wanted(cond.values, cond.case_sensitive, cond.operator)
    return f"{cond.name}: no MIME part's value {cond.operator} {wanted} ({_listing(values, 3)})"


def _describe_attachment(cond: model.AttachmentTest, msg: MessageView, ctx: EvalContext, found: Found) -> str:
    return "has an attachment" if found[1] else "has no attachment"


_DESCRIBERS: dict[type, Callable[..., str]] = {
    model.HeaderTest: _describe_header,
    model.AddressTest: _describe_address,
    model.HeaderExists: _describe_exists,
    model.CountTest: _describe_count,
    model.BodyTest: _describe_body,
    model.SizeTest: _describe_size,
    model.AgeTest: _describe_age,
    model.DateTest: _describe_date,
    model.DatePartTest: _describe_date_parts,
    model.FlagTest: _describe_flag,
    model.AttachmentTest: _describe_attachment,
    model.AttachmentPartTest: _describe_attachment_parts,
    model.MimeHeaderTest: _describe_mime_header,
}


def describe(cond: Condition, msg: MessageView, ctx: EvalContext, found: Found) -> str:
    """The human text for one leaf's result, e.g. ``From: 'GitHub <n@github.com>' contains 'github.com'``."""
    return _DESCRIBERS[type(cond)](cond, msg, ctx, found)
