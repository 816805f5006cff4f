"""A rule set as a Sieve script (RFC 5228) that files mail the same way at delivery time.

Only rules that run on INBOX are exported: delivery files new mail, it never revisits
other folders.  Each exported rule becomes one ``if`` block, in rule order, with its
actions in mailrules' execution order (flags, copies, replies and redirects, the
terminal action) and ``stop`` after a terminal action, so later rules don't see the
message, as in mailrules.

Where Sieve differs, the script says so in a ``# note:`` comment or export refuses:

* Case-insensitive tests use Sieve's default comparator ``i;ascii-casemap`` (Pigeonhole
  has no ``i;unicode-casemap``): only ASCII letters fold, so ``Grüße`` does not match
  ``GRÜSSE`` and ``ß`` never equals ``ss``.
* ``regex`` becomes a POSIX extended regex, translated from Python's syntax; patterns
  that have no POSIX form (lazy repeats, look-around, ``\\b``, non-ASCII…) are refused.
* ``display_name`` has no Sieve address part: it is tested on the whole header.
* ``has_attachment`` and ``attachment`` become ``foreverypart`` loops that run before
  the rule's ``if`` and set a variable the condition tests.
* ``text``, an attachment's size, zones with daylight saving time, ``exists``/``count``
  on the envelope and ``reply`` templates with Jinja expressions can't be expressed;
  neither can a flag change after an earlier rule copied the message (Sieve files a copy
  with the flags it has at that moment, mailrules with the final ones).
* ``body``, ``mime_header``, ``count`` of addresses, ``user``/``detail`` and the envelope
  keys carry a note where Pigeonhole reads the message otherwise (docs/rules.md).
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from re import _parser as sre_parse  # type: ignore[attr-defined]  # the only parser that knows every regex form

from mailrules.errors import Loc, MailrulesError, Problem
from mailrules.folders import folder_matches
from mailrules.match import fixed_offset
from mailrules.model import (
    NOWHERE,
    Action,
    ActiveWindow,
    AddFlags,
    AddressTest,
    AgeTest,
    All,
    Any,
    AttachmentPartTest,
    AttachmentTest,
    MimeHeaderTest,
    BodyTest,
    Condition,
    Copy,
    CountTest,
    DatePartTest,
    DateTest,
    PartCheck,
    Delete,
    FlagTest,
    HeaderExists,
    HeaderTest,
    Move,
    Not,
    Redirect,
    RemoveFlags,
    Reply,
    Rule,
    RuleSet,
    SizeTest,
    Stop,
    Trash,
)


class SieveUnsupported(MailrulesError):
    """Rules that have no Sieve equivalent; ``problems`` names each one with its location."""

    exit_code = 2  # like any other rule file that can't be compiled as asked

    def __init__(self, problems: Sequence[Problem]):
        self.problems = tuple(sorted(problems, key=lambda p: (p.loc, p.message)))
        super().__init__("cannot export to Sieve:\n" + "\n".join(str(p) for p in self.problems))


class _Gap(Exception):
    """Raised inside one rule's translation; ``to_sieve`` collects them all."""

    def __init__(self, reason: str, loc: Loc):
        super().__init__(reason)
        self.reason = reason
        self.loc = loc


@dataclass(frozen=True, slots=True)
class Sieve:
    """A piece of Sieve text with the extensions it needs and the notes to print above it."""

    text: str
    requires: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()
    prelude: tuple[str, ...] = ()  # commands that must run before the ``if`` that holds this test


def _join(parts: Sequence[Sieve], separator: str, before: str = "", after: str = "") -> Sieve:
    return Sieve(
        before + separator.join(part.text for part in parts) + after,
        frozenset().union(*(part.requires for part in parts)),
        tuple(note for part in parts for note in part.notes),
        tuple(command for part in parts for command in part.prelude),
    )


# ---------------------------------------------------------------- strings


def quote(text: str) -> str:
    """A Sieve string: quoted, or a ``text:`` block (dot-stuffed) when it spans lines.

    >>> quote('say "hi" \\\\o/')
    '"say \\\\"hi\\\\" \\\\\\\\o/"'
    """
    if "\n" in text or "\r" in text:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").removesuffix("\n").split("\n")
        return "text:\n" + "".join(("." + line if line.startswith(".") else line) + "\n" for line in lines) + ".\n"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def string_list(values: Sequence[str]) -> str:
    return quote(values[0]) if len(values) == 1 else "[" + ", ".join(map(quote, values)) + "]"


def glob_escape(text: str) -> str:
    """Text as a ``:matches`` pattern that matches only itself."""
    return re.sub(r"([*?\\])", r"\\\1", text)


def _comparator(case_sensitive: bool) -> str:
    # i;ascii-casemap is every test's default; i;octet compares exactly.
    return ' :comparator "i;octet"' if case_sensitive else ""


def _case_notes(values: Iterable[str], case_sensitive: bool) -> tuple[str, ...]:
    if case_sensitive:
        return ()
    folding = [value for value in values if any(not c.isascii() and c.lower() != c.upper() for c in value)]
    if not folding:
        return ()
    return (f"Sieve folds ASCII letters only: other cases of the non-ASCII letters in {folding[0]!r} don't match",)


# ---------------------------------------------------------------- conditions


def sieve_test(cond: Condition) -> Sieve:
    """The Sieve test for a condition; raises ``_Gap`` when there is none."""
    match cond:
        case All(children):
            return _combine("allof", "true", [sieve_test(child) for child in children])
        case Any(children):
            return _combine("anyof", "false", [sieve_test(child) for child in children])
        case Not(child):
            inner = sieve_test(child)
            return Sieve("not " + inner.text, inner.requires, inner.notes, inner.prelude)
        case HeaderTest(key="envelope_to" | "envelope_from") | AddressTest(key="envelope_to" | "envelope_from"):
            return _envelope_test(cond)
        case HeaderExists(key="envelope_to" | "envelope_from", loc=loc) | CountTest(key="envelope_to" | "envelope_from", loc=loc):
            raise _Gap(f"{cond.key}: Sieve can test the envelope's addresses, not whether there is one or how many", loc)
        case HeaderTest(list_id=True):
            return _list_id_test(cond)
        case HeaderTest():
            return _header_test(cond)
        case AddressTest():
            return _address_test(cond)
        case HeaderExists(names=names, present=present):
            exists = _combine("anyof", "false", [Sieve(f"exists {quote(name)}") for name in names])
            return exists if present else Sieve("not " + exists.text)
        case CountTest():
            return _count_test(cond)
        case BodyTest():
            return _body_test(cond)
        case SizeTest(operator=operator, size=size):
            return Sieve(f"size {':over' if operator == 'larger' else ':under'} {_size(size)}")
        case AgeTest(operator=operator, seconds=seconds):
            holds = operator == "newer_than" and seconds > 0
            return Sieve(str(holds).lower(), notes=(f"{operator}: at delivery a message arrives now, so this is {str(holds).lower()}",))
        case DateTest():
            return _date_test(cond)
        case DatePartTest():
            return _date_parts_test(cond)
        case FlagTest(flag=flag, present=present):
            return Sieve(("" if present else "not ") + f"hasflag {quote(flag)}", frozenset({"imap4flags"}))
        case AttachmentTest(present=present):
            found = _attachment_search(AttachmentPartTest())
            return found if present else Sieve("not " + found.text, found.requires, found.notes, found.prelude)
        case AttachmentPartTest():
            return _attachment_search(cond)
        case MimeHeaderTest():
            return _mime_header_test(cond)
    raise TypeError(f"not a condition: {cond!r}")


def _combine(name: str, empty: str, parts: list[Sieve]) -> Sieve:
    if not parts:
        return Sieve(empty)
    if len(parts) == 1:
        return parts[0]
    return _join(parts, ", ", f"{name}(", ")")


def _index(index: int | None) -> tuple[str, frozenset[str]]:
    """RFC 5260 ``:index N`` counts from the top, ``:index N :last`` from the bottom."""
    if index is None:
        return "", frozenset()
    return (f" :index {index}" if index > 0 else f" :index {-index} :last"), frozenset({"index"})


_ENVELOPE_PARTS = {"address": ":all", "localpart": ":localpart", "domain": ":domain", "user": ":user", "detail": ":detail"}
_ENVELOPE_NOTE = ("{key}: Sieve reads the real SMTP envelope; mailrules reads the topmost {names} header that records it "
                  "on delivered mail")


def _envelope_test(cond: HeaderTest | AddressTest) -> Sieve:
    """``envelope`` (RFC 5228 §5.4) tests the SMTP envelope that the delivery headers record."""
    part = "to" if cond.key == "envelope_to" else "from"
    note = _ENVELOPE_NOTE.format(key=cond.key, names=" or ".join(cond.names))
    notes = _case_notes(cond.values, cond.case_sensitive) + (note,)
    comparator = _comparator(cond.case_sensitive)
    if isinstance(cond, HeaderTest):
        values = [posix_regex(v, cond.loc, multiline=False) for v in cond.values] if cond.operator == "regex" else cond.values
        requires = {"envelope", "regex"} if cond.operator == "regex" else {"envelope"}
        test = f'envelope :all :{cond.operator}{comparator} "{part}" {string_list(values)}'
        return Sieve(test, frozenset(requires), notes)
    if cond.operator == "display_name":
        raise _Gap(f"{cond.key}: the envelope has no display name", cond.loc)
    requires = {"envelope", "subaddress"} if cond.operator in ("user", "detail") else {"envelope"}
    if cond.operator == "domain":
        domains = [value.rstrip(".") for value in cond.values]
        subdomains = string_list(["*." + glob_escape(domain) for domain in domains])
        exact = f'envelope :domain :is{comparator} "{part}" {string_list(domains)}'
        return Sieve(f'anyof({exact}, envelope :domain :matches{comparator} "{part}" {subdomains})', frozenset(requires), notes)
    test = f'envelope {_ENVELOPE_PARTS[cond.operator]} :is{comparator} "{part}" {string_list(cond.values)}'
    return Sieve(test, frozenset(requires), notes)


_MIME_NOTE = "mime_header: Sieve's :anychild also reads the parts of attached messages; mailrules does not"


# §7's attachment part in RFC 5703 tests, checked against Pigeonhole in tests/conformance.
_IS_ATTACHMENT = (
    'anyof(header :mime :contenttype :is "Content-Disposition" "attachment", '
    'allof(not header :mime :type :is "Content-Type" ["text", "multipart"], '
    'anyof(header :mime :param "filename" :matches "Content-Disposition" "?*", '
    'header :mime :param "name" :matches "Content-Type" "?*")))'
)
_ATTACHMENT_NOTE = ("attachment: Sieve's foreverypart also looks inside attached messages, and takes a part with an "
                    "unknown transfer encoding for its declared type; mailrules does neither")


def _attachment_search(cond: AttachmentPartTest) -> Sieve:
    """``foreverypart`` (RFC 5703) sets a variable when a part fits; the condition tests the variable."""
    if cond.larger is not None or cond.smaller is not None:
        raise _Gap("attachment larger/smaller: Sieve cannot measure a MIME part", cond.loc)
    tests = [Sieve(_IS_ATTACHMENT)]
    if cond.filename_operator is not None:
        tests.append(_filename_test(cond))
    if cond.types:
        tests.append(_combine("anyof", "false", [_type_test(wanted) for wanted in cond.types]))
    found = _combine("allof", "true", tests)
    key = f"{cond.filename_operator}|{cond.filenames}|{cond.case_sensitive}|{cond.types}"
    variable = f"attachment_{zlib.crc32(key.encode()):08x}"
    loop = (f'set "{variable}" "";\nforeverypart {{\n    if {found.text} {{\n        set "{variable}" "1";\n'
            "        break;\n    }\n}\n")
    requires = found.requires | {"mime", "foreverypart", "variables"}
    return Sieve(f'string :is "${{{variable}}}" "1"', frozenset(requires), found.notes + (_ATTACHMENT_NOTE,), (loop,))


def _filename_test(cond: AttachmentPartTest) -> Sieve:
    operator, comparator = cond.filename_operator, _comparator(cond.case_sensitive)
    values: Sequence[str] = cond.filenames
    requires: frozenset[str] = frozenset()
    if operator == "regex":
        values, requires = [posix_regex(v, cond.loc, multiline=False) for v in cond.filenames], frozenset({"regex"})
    params = [f'header :mime :param "{param}" :{operator}{comparator} "{field}" {string_list(values)}'
              for param, field in (("filename", "Content-Disposition"), ("name", "Content-Type"))]
    return Sieve(f"anyof({params[0]}, {params[1]})", requires, _case_notes(cond.filenames, cond.case_sensitive))


def _type_test(wanted: str) -> Sieve:
    if "/" not in wanted or wanted.endswith("/*"):
        return Sieve(f'header :mime :type :is "Content-Type" {quote(wanted.split("/")[0])}')
    return Sieve(f'header :mime :contenttype :is "Content-Type" {quote(wanted)}')


def _mime_header_test(cond: MimeHeaderTest) -> Sieve:
    """RFC 5703 ``:mime :anychild``: the header in the message or any of its MIME parts."""
    if cond.operator == "exists":
        test = f"exists :mime :anychild {quote(cond.name)}"
        return Sieve(test if cond.present else "not " + test, frozenset({"mime"}), (_MIME_NOTE,))
    comparator = _comparator(cond.case_sensitive)
    values: Sequence[str] = cond.values
    requires = {"mime"}
    if cond.operator == "regex":
        values, requires = [posix_regex(v, cond.loc, multiline=False) for v in cond.values], {"mime", "regex"}
    test = f"header :mime :anychild :{cond.operator}{comparator} {quote(cond.name)} {string_list(values)}"
    return Sieve(test, frozenset(requires), _case_notes(cond.values, cond.case_sensitive) + (_MIME_NOTE,))


def _header_test(cond: HeaderTest) -> Sieve:
    index, needs = _index(cond.index)
    if cond.operator == "regex":
        patterns = [posix_regex(value, cond.loc, multiline=False) for value in cond.values]
        test = f'header{index} :regex{_comparator(cond.case_sensitive)} {string_list(cond.names)} {string_list(patterns)}'
        return Sieve(test, frozenset({"regex"}) | needs, _case_notes(cond.values, cond.case_sensitive))
    test = f"header{index} :{cond.operator}{_comparator(cond.case_sensitive)} {string_list(cond.names)} {string_list(cond.values)}"
    return Sieve(test, needs, notes=_case_notes(cond.values, cond.case_sensitive))


def _count_test(cond: CountTest) -> Sieve:
    command = "address" if cond.addresses else "header"
    test = f'{command} :count "{cond.relation}" :comparator "i;ascii-numeric" {string_list(cond.names)} "{cond.number}"'
    notes = ("count: Sieve counts a header with no valid address (undisclosed-recipients:;) as one address, "
             "mailrules counts valid addresses only",) if cond.addresses else ()
    return Sieve(test, frozenset({"relational", "comparator-i;ascii-numeric"}), notes)


def _list_id_test(cond: HeaderTest) -> Sieve:
    """The identifier inside ``<...>`` (RFC 2919), or the whole value when it has no brackets."""
    if cond.operator == "regex":
        raise _Gap("list_id regex: Sieve cannot test a regex against the identifier alone", cond.loc)
    inner = {"contains": lambda v: "*" + glob_escape(v) + "*", "is": glob_escape, "matches": lambda v: v}[cond.operator]
    comparator = _comparator(cond.case_sensitive)
    bracketed = f'header :matches{comparator} "List-Id" {string_list(["*<" + inner(v) + ">*" for v in cond.values])}'
    bare = f'allof(not header :contains "List-Id" "<", header :{cond.operator}{comparator} "List-Id" {string_list(cond.values)})'
    return Sieve(f"anyof({bracketed}, {bare})", notes=_case_notes(cond.values, cond.case_sensitive))


def _address_test(cond: AddressTest) -> Sieve:
    index, needs = _index(cond.index)
    address, header = "address" + index, "header" + index
    names, comparator = string_list(cond.names), _comparator(cond.case_sensitive)
    notes = _case_notes(cond.values, cond.case_sensitive)
    match cond.operator:
        case "address":
            return Sieve(f"{address} :all :is{comparator} {names} {string_list(cond.values)}", needs, notes)
        case "localpart":
            return Sieve(f"{address} :localpart :is{comparator} {names} {string_list(cond.values)}", needs, notes)
        case "user" | "detail":
            note = f"{cond.operator}: Sieve splits at the server's recipient_delimiter (Pigeonhole's default is '+')"
            test = f"{address} :{cond.operator} :is{comparator} {names} {string_list(cond.values)}"
            return Sieve(test, frozenset({"subaddress"}) | needs, notes + (note,))
        case "domain":
            domains = [value.rstrip(".") for value in cond.values]
            subdomains = string_list(["*." + glob_escape(domain) for domain in domains])
            exact = f"{address} :domain :is{comparator} {names} {string_list(domains)}"
            return Sieve(f"anyof({exact}, {address} :domain :matches{comparator} {names} {subdomains})", needs, notes)
        case "display_name":
            note = "display_name: Sieve has no display-name part; the whole header is searched, addresses included"
            return Sieve(f"{header} :contains{comparator} {names} {string_list(cond.values)}", needs, notes + (note,))
    raise TypeError(f"not an address operator: {cond.operator!r}")


# Where Pigeonhole's body :text reads other parts than mailrules' body (docs/rules.md).
BODY_NOTES = (
    "body: Sieve's body :text reads the text parts; how it renders HTML may differ from mailrules",
    "body: Sieve also reads the text of attached messages (message/rfc822, multipart/digest entries); mailrules does not",
    "body: a multipart without a boundary or a part with an invalid Content-Type is text to mailrules, no text to Sieve",
)


def _body_test(cond: BodyTest) -> Sieve:
    if cond.scope == "text":
        raise _Gap("text: Sieve cannot search all header fields and the body at once", cond.loc)
    notes = _case_notes(cond.values, cond.case_sensitive) + BODY_NOTES
    if cond.operator == "regex":
        patterns = [posix_regex(value, cond.loc, multiline=True) for value in cond.values]
        test = f"body :text :regex{_comparator(cond.case_sensitive)} {string_list(patterns)}"
        return Sieve(test, frozenset({"body", "regex"}), notes)
    return Sieve(f"body :text :contains{_comparator(cond.case_sensitive)} {string_list(cond.values)}", frozenset({"body"}), notes)


def _size(size: int) -> str:
    for suffix, factor in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


def _date_test(cond: DateTest) -> Sieve:
    relation = quote("lt" if cond.operator == "before" else "ge")
    day = quote(cond.day.isoformat())
    if cond.source == "arrival":  # delivery is the arrival: the current day, in the server's zone
        return Sieve(f'currentdate :value {relation} "date" {day}', frozenset({"date", "relational"}))
    return Sieve(f'date :originalzone :value {relation} "date" "date" {day}', frozenset({"date", "relational"}))


def _zone_argument(cond: DatePartTest) -> str:
    """Sieve's ``:zone`` takes a fixed offset; a zone with daylight saving time has none."""
    if cond.zone == "original":
        return " :originalzone" if cond.source == "sent" else ""
    offset = fixed_offset(cond.zone)
    if offset is None:
        raise _Gap(f"zone {cond.zone}: Sieve's :zone takes a fixed offset (+0100), not a zone with daylight saving "
                   "time", cond.loc)
    minutes = int(offset.utcoffset(None).total_seconds()) // 60
    return f' :zone "{"-" if minutes < 0 else "+"}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"'


def _sieve_part_value(check: PartCheck, value: int) -> str:
    return str((value + 1) % 7) if check.part == "weekday" else str(value)  # Sieve's weekday 0 is Sunday


def _date_parts_test(cond: DatePartTest) -> Sieve:
    zone = _zone_argument(cond)
    command = f"date{zone}" if cond.source == "sent" else f"currentdate{zone}"
    header = ' "date"' if cond.source == "sent" else ""
    tests = []
    for check in cond.checks:
        relations = ([("eq", list(check.values))] if check.values else []) + [
            (relation, [number]) for relation, number in check.relations]
        for relation, numbers in relations:
            keys = string_list([_sieve_part_value(check, number) for number in numbers])
            tests.append(Sieve(f'{command} :value "{relation}" :comparator "i;ascii-numeric"{header} "{check.part}" {keys}'))
    combined = _combine("allof", "true", tests)
    return Sieve(combined.text, frozenset({"date", "relational", "comparator-i;ascii-numeric"}))


# ---------------------------------------------------------------- regex translation


def posix_regex(pattern: str, loc: Loc, *, multiline: bool) -> str:
    """A Python regex as a POSIX extended regex with the same matches, or ``_Gap``.

    >>> posix_regex(r"^\\[PATCH v\\d+\\] (fix|add)(es)?", NOWHERE, multiline=False)
    '^\\\\[PATCH v[0-9]+\\\\] (fix|add)(es)?'
    """
    if not pattern.isascii():
        raise _Gap(f"regex {pattern!r}: Sieve regexes match bytes, not non-ASCII characters", loc)
    try:
        parsed = sre_parse.parse(pattern)
    except re.error as exc:
        raise _Gap(f"regex {pattern!r}: {exc}", loc) from exc
    if parsed.state.flags & ~(re.UNICODE | re.ASCII):
        raise _Gap(f"regex {pattern!r}: inline flags have no POSIX form", loc)
    return _ere_body(parsed, _EreContext(pattern, loc, multiline))


@dataclass(frozen=True, slots=True)
class _EreContext:
    pattern: str
    loc: Loc
    multiline: bool

    def gap(self, what: str) -> _Gap:
        return _Gap(f"regex {self.pattern!r}: {what} has no POSIX form", self.loc)


_ERE_SPECIAL = set(".[]()*+?{}|^$\\")
_CATEGORIES = {
    sre_parse.CATEGORY_DIGIT: "0-9",
    sre_parse.CATEGORY_SPACE: "[:space:]",
    sre_parse.CATEGORY_WORD: "[:alnum:]_",
}
_NEGATED_CATEGORIES = {
    sre_parse.CATEGORY_NOT_DIGIT: "0-9",
    sre_parse.CATEGORY_NOT_SPACE: "[:space:]",
    sre_parse.CATEGORY_NOT_WORD: "[:alnum:]_",
}
# Without REG_NEWLINE, POSIX ^ and $ anchor at the ends of the whole text; Python's ^ and $
# do too, except on a body, which mailrules searches line by line (MULTILINE).
_ANCHORS = {
    sre_parse.AT_BEGINNING: "^",
    sre_parse.AT_END: "$",
    sre_parse.AT_BEGINNING_STRING: "^",
    sre_parse.AT_END_STRING: "$",
}
_LINE_ANCHORS = {sre_parse.AT_BEGINNING, sre_parse.AT_END}
# Inside a bracket expression these start a collating element or range, or end it.
_CLASS_LITERALS = {"]": "", "-": "[.-.]", "^": "[.^.]", "[": "[.[.]"}


def _ere(items: Iterable[tuple[object, object]], cx: _EreContext) -> str:
    return "".join(_ere_item(op, arg, cx) for op, arg in items)


def _ere_body(items: sre_parse.SubPattern, cx: _EreContext) -> str:
    """A whole pattern or group body: an alternation needs no parentheses of its own here."""
    if len(items) == 1 and items[0][0] is sre_parse.BRANCH:
        return "|".join(_ere(branch, cx) for branch in items[0][1][1])
    return _ere(items, cx)


def _ere_item(op: object, arg: object, cx: _EreContext) -> str:
    if op is sre_parse.LITERAL:
        char = chr(arg)  # type: ignore[arg-type]
        return "\\" + char if char in _ERE_SPECIAL else char
    if op is sre_parse.ANY:
        if cx.multiline:  # POSIX "." also matches a line break, Python's does not
            raise cx.gap("'.' across the lines of a body")
        return "."
    if op is sre_parse.IN:
        return _ere_class(arg, cx)  # type: ignore[arg-type]
    if op is sre_parse.NOT_LITERAL:
        return _ere_class([(sre_parse.NEGATE, None), (sre_parse.LITERAL, arg)], cx)
    if op is sre_parse.MAX_REPEAT:
        low, high, item = arg  # type: ignore[misc]
        return _ere_group(item, cx) + _ere_count(low, high)
    if op is sre_parse.SUBPATTERN:
        _, add_flags, del_flags, item = arg  # type: ignore[misc]
        if add_flags or del_flags:
            raise cx.gap("a group with flags")
        return "(" + _ere_body(item, cx) + ")"
    if op is sre_parse.BRANCH:
        return "(" + "|".join(_ere(branch, cx) for branch in arg[1]) + ")"  # type: ignore[index]
    if op is sre_parse.AT and arg in _ANCHORS and not (cx.multiline and arg in _LINE_ANCHORS):
        return _ANCHORS[arg]
    raise cx.gap(_describe_op(op, arg))


_ATOMS = (sre_parse.LITERAL, sre_parse.ANY, sre_parse.IN, sre_parse.CATEGORY, sre_parse.SUBPATTERN, sre_parse.BRANCH)


def _ere_group(item: sre_parse.SubPattern, cx: _EreContext) -> str:
    """The operand of a repeat: one atom as it is, anything longer in parentheses."""
    text = _ere(item, cx)
    return text if len(item) == 1 and item[0][0] in _ATOMS else "(" + text + ")"


def _ere_count(low: int, high: int) -> str:
    if (low, high) == (0, sre_parse.MAXREPEAT):
        return "*"
    if (low, high) == (1, sre_parse.MAXREPEAT):
        return "+"
    if (low, high) == (0, 1):
        return "?"
    if high == sre_parse.MAXREPEAT:
        return f"{{{low},}}"
    return f"{{{low}}}" if low == high else f"{{{low},{high}}}"


def _ere_class(items: list[tuple[object, object]], cx: _EreContext) -> str:
    if len(items) == 1 and items[0][0] is sre_parse.CATEGORY and items[0][1] in _NEGATED_CATEGORIES:
        return "[^" + _NEGATED_CATEGORIES[items[0][1]] + "]"  # \D, \S, \W
    negate = bool(items) and items[0][0] is sre_parse.NEGATE
    body, closing = [], False
    for op, arg in items[1:] if negate else items:
        if op is sre_parse.LITERAL:
            char = chr(arg)  # type: ignore[arg-type]
            closing |= char == "]"
            body.append(_CLASS_LITERALS.get(char, char))
        elif op is sre_parse.RANGE:
            low, high = arg  # type: ignore[misc]
            body.append(f"{chr(low)}-{chr(high)}")
        elif op is sre_parse.CATEGORY and arg in _CATEGORIES:
            body.append(_CATEGORIES[arg])
        else:
            raise cx.gap(_describe_op(op, arg))
    # "]" is literal only first in a bracket expression.
    return "[" + ("^" if negate else "") + ("]" if closing else "") + "".join(body) + "]"


def _describe_op(op: object, arg: object) -> str:
    names = {
        sre_parse.MIN_REPEAT: "a lazy repeat",
        sre_parse.POSSESSIVE_REPEAT: "a possessive repeat",
        sre_parse.GROUPREF: "a back-reference",
        sre_parse.ASSERT: "a look-ahead/behind",
        sre_parse.ASSERT_NOT: "a negative look-ahead/behind",
        sre_parse.AT: "an anchor such as \\b or, in a body, ^/$",
        sre_parse.CATEGORY: "a negated class escape (\\D, \\S, \\W) inside brackets",
        sre_parse.ATOMIC_GROUP: "an atomic group",
        sre_parse.GROUPREF_EXISTS: "a conditional group",
    }
    return names.get(op, str(op).lower())  # type: ignore[call-overload]


# ---------------------------------------------------------------- actions

TemplateReader = Callable[[str], str]


def _read_template(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


_JINJA = re.compile(r"\{[{%#]")


# mailrules' execution order (§3); flag actions keep their listed order among themselves.
_STAGE = {AddFlags: 0, RemoveFlags: 0, Copy: 1, Reply: 2, Redirect: 2, Move: 3, Trash: 3, Delete: 3}


def _actions(rule: Rule, read_template: TemplateReader) -> list[Sieve]:
    """The rule's actions in mailrules' execution order, then ``stop`` when it is terminal."""
    ordered = sorted((a for a in rule.then if not isinstance(a, Stop)), key=lambda a: _STAGE[type(a)])
    commands = [_action(action, rule, read_template) for action in ordered]
    if rule.terminal:
        commands.append(Sieve("stop;"))
    return commands


def _action(action: Action, rule: Rule, read_template: TemplateReader) -> Sieve:
    create = " :create" if rule.create_folders else ""
    mailbox = {"mailbox"} if rule.create_folders else set()
    match action:
        case AddFlags(flags=flags):
            return Sieve(f"addflag {string_list(flags)};", frozenset({"imap4flags"}))
        case RemoveFlags(flags=flags):
            return Sieve(f"removeflag {string_list(flags)};", frozenset({"imap4flags"}))
        case Copy(folder=folder):
            return Sieve(f"fileinto :copy{create} {quote(folder)};", frozenset({"fileinto", "copy"} | mailbox))
        case Move(folder=folder) | Trash(folder=folder):
            return Sieve(f"fileinto{create} {quote(folder)};", frozenset({"fileinto"} | mailbox))
        case Delete():
            return Sieve("discard;")
        case Redirect(address=address):
            return Sieve(f"redirect :copy {quote(address)};", frozenset({"copy"}))
        case Reply():
            return _vacation(action, read_template)
    raise TypeError(f"not an action: {action!r}")


def _vacation(reply: Reply, read_template: TemplateReader) -> Sieve:
    body = _reply_body(reply, read_template)
    days = max(1, math.ceil(reply.once_per_seconds / 86400))
    notes = []
    if reply.once_per_seconds != days * 86400:
        notes.append(f"reply: Sieve's vacation counts whole days, so once_per becomes {days} days")
    if reply.save_to:
        notes.append("reply: save_to is not exported; Sieve's vacation keeps no copy")
    if not reply.require_recipient:
        notes.append("reply: require_recipient: false is not exported; vacation answers only mail addressed to you")
    options = f":days {days}"
    if reply.subject is not None:
        options += f" :subject {quote(_literal_template(reply.subject, 'subject', reply.loc))}"
    if reply.sender:
        options += f" :from {quote(reply.sender)}"
    return Sieve(f"vacation {options} {quote(body)};", frozenset({"vacation"}), tuple(notes))


def _reply_body(reply: Reply, read_template: TemplateReader) -> str:
    if reply.template is None:
        return _literal_template(reply.body or "", "body", reply.loc)
    try:
        text = read_template(reply.template)
    except (OSError, UnicodeDecodeError) as exc:
        raise _Gap(f"reply template {reply.template}: cannot be read ({exc})", reply.loc) from exc
    return _literal_template(text, f"template {reply.template}", reply.loc)


def _literal_template(text: str, what: str, loc: Loc) -> str:
    if _JINJA.search(text):
        raise _Gap(f"reply {what}: Jinja expressions have no Sieve equivalent", loc)
    return text


# ---------------------------------------------------------------- rules and the script


def _window_tests(window: ActiveWindow | None) -> list[Sieve]:
    """Sieve ``currentdate`` (RFC 5260) on the delivery day, in the window's zone."""
    if window is None:
        return []
    zone = _zone_argument(DatePartTest("arrival", (), window.zone, window.loc))
    bounds = [(relation, day) for relation, day in (("ge", window.start), ("le", window.until)) if day is not None]
    return [Sieve(f'currentdate{zone} :value "{relation}" "date" "{day.isoformat()}"', frozenset({"date", "relational"}))
            for relation, day in bounds]


def _rule_block(rule: Rule, read_template: TemplateReader) -> Sieve:
    test = _combine("allof", "true", [*_window_tests(rule.active), sieve_test(rule.when)])
    actions = _actions(rule, read_template)
    notes = test.notes + tuple(note for action in actions for note in action.notes)
    description = " ".join(rule.description.split()) if rule.description else ""
    header = f"# rule {rule.name}" + (f": {description}" if description else "") + "\n"
    comments = "".join(f"# note: {note}\n" for note in dict.fromkeys(notes))
    body = "".join(_indented(action.text) for action in actions)
    prelude = "".join(dict.fromkeys(test.prelude))
    text = f"{header}{comments}{prelude}if {test.text} {{\n{body}}}\n"
    return Sieve(text, test.requires.union(*(action.requires for action in actions)))


def _indented(command: str) -> str:
    """A command indented one level, except the lines of a ``text:`` block, which are literal."""
    out, literal = [], False
    for line in command.removesuffix("\n").split("\n"):
        out.append(line if literal else "    " + line)
        literal = line.endswith("text:") if not literal else line != "."
    return "".join(line + "\n" for line in out)


def _runs_on_inbox(rule: Rule) -> bool:
    return any(folder_matches(pattern, "INBOX") for pattern in rule.folders)


def _skip_reason(rule: Rule) -> str | None:
    if not rule.enabled:
        return "disabled"
    if not _runs_on_inbox(rule):
        return f"runs on {', '.join(rule.folders)}; delivery only files new mail into INBOX"
    return None


def _flag_after_copy(rules: Sequence[Rule]) -> dict[str, str]:
    """Rules that change flags after an earlier rule copied the message: name -> the copying rule."""
    found, copier = {}, None
    for rule in rules:
        if copier and any(isinstance(a, (AddFlags, RemoveFlags)) for a in rule.then):
            found[rule.name] = copier
        if any(isinstance(a, Copy) for a in rule.then):
            copier = copier or rule.name
    return found


def to_sieve(ruleset: RuleSet, *, read_template: TemplateReader = _read_template) -> str:
    """The Sieve script for the rules that run on INBOX; raises ``SieveUnsupported`` listing every gap."""
    exported = [rule for rule in ruleset.rules if _skip_reason(rule) is None]
    late_flags = _flag_after_copy(exported)
    repliers = [rule.name for rule in exported if any(isinstance(a, Reply) for a in rule.then)]
    blocks, problems = [], []
    for rule in ruleset.rules:
        reason = _skip_reason(rule)
        if reason is not None:
            blocks.append(Sieve(f"# rule {rule.name}: not exported, {reason}\n"))
            continue
        try:
            _check_order(rule, late_flags, repliers)
            blocks.append(_rule_block(rule, read_template))
        except _Gap as gap:
            loc = gap.loc if gap.loc != NOWHERE else rule.loc
            problems.append(Problem(loc, f"rule {rule.name!r}: {gap.reason}"))
    if problems:
        raise SieveUnsupported(problems)
    return _script(ruleset, blocks)


def _check_order(rule: Rule, late_flags: dict[str, str], repliers: list[str]) -> None:
    if rule.name in late_flags:
        raise _Gap(
            f"changes flags after rule {late_flags[rule.name]!r} copied the message; Sieve files a copy "
            "with the flags it has then, mailrules with the final ones (put the flag rule first)",
            rule.loc,
        )
    if sum(isinstance(action, Reply) for action in rule.then) > 1:
        raise _Gap("has two replies, but Sieve allows one vacation per message", rule.loc)
    if len(repliers) > 1 and rule.name in repliers[1:]:
        raise _Gap(f"replies too, but Sieve allows one vacation per message (rule {repliers[0]!r} has it)", rule.loc)


def _script(ruleset: RuleSet, blocks: list[Sieve]) -> str:
    requires = sorted(frozenset().union(*(block.requires for block in blocks)))
    source = ", ".join(ruleset.files) or "a mailrules rule set"
    lines = [f"# Sieve filter for {source} (exported by mailrules; rules that run on INBOX)\n"]
    if requires:
        lines.append(f"require {string_list(requires) if len(requires) > 1 else quote(requires[0])};\n")
    return "".join(lines + ["\n" + block.text for block in blocks])
