"""Schema-valid rule-file data -> the AST of ``mailrules.model``.

The JSON Schema has already checked shapes, so this module is about meaning: which
headers a key reads, canonical flag names, regexes that compile, sizes, durations and
days that parse, folder names that a server can hold, and the defaults of the file a
rule comes from.  It stays defensive about shapes anyway, so that calling it on
unchecked data yields problems rather than tracebacks.

Everything here is pure: template files are only located, and ``loader`` reads them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from email.utils import parseaddr
from typing import Any

from mailrules.errors import Loc, Problem, RuleFileError
from mailrules.model import (
    SYSTEM_FLAGS,
    Action,
    ActiveWindow,
    AddFlags,
    AddressTest,
    AgeTest,
    All,
    AttachmentPartTest,
    AttachmentTest,
    BodyTest,
    MimeHeaderTest,
    Condition,
    WEEKDAYS,
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
    SizeTest,
    Stop,
    Trash,
    canonical_flag,
)
from mailrules.model import Any as AnyOf
from mailrules.match import zone_of
from mailrules.units import parse_day, parse_duration, parse_size
from mailrules.yamlsrc import LocIndex, Path, YamlDocument

ADDRESS_HEADERS: Mapping[str, tuple[str, ...]] = {
    "from": ("From",),
    "to": ("To",),
    "cc": ("Cc",),
    "bcc": ("Bcc",),
    "reply_to": ("Reply-To",),
    "sender": ("Sender",),
    "recipient": ("To", "Cc", "Bcc"),
    # IMAP never sees the SMTP envelope; on delivered mail these headers record it.
    "envelope_to": ("Delivered-To", "X-Original-To"),
    "envelope_from": ("Return-Path",),
}
TEXT_HEADERS: Mapping[str, tuple[str, ...]] = {"subject": ("Subject",), "list_id": ("List-Id",)}
STRING_OPERATORS = ("contains", "is", "matches", "regex")
ADDRESS_OPERATORS = ("address", "domain", "localpart", "user", "detail", "display_name")
HEADER_OPERATORS = (*STRING_OPERATORS, "exists", *ADDRESS_OPERATORS)
BODY_OPERATORS = ("contains", "regex")
SIZE_KEYS = ("larger", "smaller")
AGE_KEYS = ("older_than", "newer_than")
DAY_KEYS = ("before", "since", "sent_before", "sent_since")
ACTIONS_WITH_ARGUMENT = ("move", "copy", "trash", "flag", "unflag", "reply", "redirect")
BARE_ACTIONS = ("delete", "trash", "stop")

# RFC 3501 atom: printable ASCII without atom-specials; keywords and flags must be atoms.
_ATOM_SPECIALS = set('(){%*"\\]')
_ADDR_SPEC = re.compile(r"[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII except ':'
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Defaults:
    """A file's ``defaults:``; a file without them gets exactly these."""

    folders: tuple[str, ...] = ("INBOX",)
    create_folders: bool = True
    trash_folder: str = "Trash"
    folder_locs: tuple[Loc, ...] = ()


@dataclass(frozen=True, slots=True)
class TemplateRef:
    """A reply template to check: a file (``path``, absolute) or inline ``source`` text."""

    base_dir: str
    loc: Loc
    path: str | None = None
    source: str | None = None
    shown_as: str = ""  # how the rule file wrote it, for messages


@dataclass(frozen=True, slots=True)
class ParsedFile:
    file: str
    rules: tuple[Rule, ...]
    account: str | None
    templates: tuple[TemplateRef, ...]
    problems: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class _Context:
    locs: LocIndex
    base_dir: str
    defaults: Defaults = Defaults()
    problems: list[Problem] = field(default_factory=list)
    templates: list[TemplateRef] = field(default_factory=list)

    def loc(self, path: Path) -> Loc:
        return self.locs.at(path)

    def key_loc(self, path: Path) -> Loc:
        return self.locs.key(path)

    def error(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(loc, message))

    def warn(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(loc, message, "warning"))

    def with_defaults(self, defaults: Defaults) -> _Context:
        return _Context(self.locs, self.base_dir, defaults, self.problems, self.templates)


# ---------------------------------------------------------------- files and rules


def parse_rule_file(doc: YamlDocument, skip: Collection[Path] = frozenset()) -> ParsedFile:
    """Build the rules of one schema-valid file; its problems (errors and warnings) travel along.

    ``skip`` names parts already known to be invalid (``("defaults",)``, ``("rules", 3)``):
    they are left out instead of being reported twice.

    >>> from mailrules.yamlsrc import parse_yaml
    >>> doc = parse_yaml("version: 1\\nrules:\\n- name: gh\\n  when: {from: github.com}\\n  then: [stop]\\n", "r.yaml")
    >>> parse_rule_file(doc).rules[0].when == HeaderTest("from", ("From",), "contains", ("github.com",))
    True
    """
    data = doc.data if isinstance(doc.data, dict) else {}
    base_dir = os.path.dirname(os.path.abspath(doc.locs.file))
    cx = _Context(doc.locs, base_dir)
    if ("defaults",) not in skip:
        cx = cx.with_defaults(_defaults(data.get("defaults"), ("defaults",), cx))
    items = data.get("rules") if isinstance(data.get("rules"), list) else []
    rules = tuple(
        rule
        for index, item in enumerate(items)
        if ("rules", index) not in skip and (rule := _rule(item, ("rules", index), cx))
    )
    account = data.get("account") if isinstance(data.get("account"), str) else None
    return ParsedFile(doc.locs.file, rules, account, tuple(cx.templates), tuple(cx.problems))


def parse_condition(data: Any, file: str = "<memory>") -> Condition:
    """One condition from plain data (as a ``when:`` would hold it); raises ``RuleFileError`` on errors.

    >>> parse_condition({"subject": {"regex": "^Invoice"}, "seen": False}) == All((
    ...     HeaderTest("subject", ("Subject",), "regex", ("^Invoice",)), FlagTest("\\\\Seen", False)))
    True
    """
    cx = _Context(LocIndex(file), os.getcwd())
    condition = _when(data, (), cx)
    errors = [problem for problem in cx.problems if problem.severity == "error"]
    if errors:
        raise RuleFileError(errors)
    return condition


def _defaults(data: Any, path: Path, cx: _Context) -> Defaults:
    builtin = Defaults()
    if not isinstance(data, dict):
        return builtin
    folders = _folder_list(data.get("folders"), path + ("folders",), cx)
    trash = data.get("trash_folder", builtin.trash_folder)
    _check_folder(trash, path + ("trash_folder",), cx, destination=True)
    return Defaults(
        folders=folders or builtin.folders,
        folder_locs=_folder_locs(data.get("folders"), path + ("folders",), cx) if folders else (),
        create_folders=data.get("create_folders", True) is not False,
        trash_folder=trash if isinstance(trash, str) else builtin.trash_folder,
    )


def _rule(data: Any, path: Path, cx: _Context) -> Rule | None:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        cx.error(cx.loc(path), "a rule must be a mapping with a name")
        return None
    when = _when(data.get("when", {}), path + ("when",), cx)
    actions = _actions(data.get("then"), path + ("then",), cx)
    return Rule(
        name=data["name"],
        when=when,
        then=actions,
        folders=_folder_list(data.get("folders"), path + ("folders",), cx) or cx.defaults.folders,
        folder_locs=_folder_locs(data.get("folders"), path + ("folders",), cx) or cx.defaults.folder_locs,
        description=data.get("description"),
        enabled=data.get("enabled", True) is not False,
        create_folders=cx.defaults.create_folders,
        source=cx.locs.file,
        loc=cx.key_loc(path + ("name",)),
        active=_active(data["active"], path + ("active",), cx) if "active" in data else None,
    )


def _active(value: Any, path: Path, cx: _Context) -> ActiveWindow | None:
    data = value if isinstance(value, dict) else {}
    if not data.keys() & {"from", "until"}:
        cx.error(cx.loc(path), "active needs from: and/or until: days, e.g. {from: 2026-12-20, until: 2027-01-06}")
        return None
    start = _measure(parse_day, data["from"], path + ("from",), cx) if "from" in data else None
    until = _measure(parse_day, data["until"], path + ("until",), cx) if "until" in data else None
    if start and until and until < start:
        cx.error(cx.loc(path + ("until",)), f"the window ends ({until}) before it starts ({start})")
    zone = _zone(data.get("zone", "UTC"), path + ("zone",), cx, original=False)
    return ActiveWindow(start, until, zone, cx.key_loc(path))


def _zone(value: Any, path: Path, cx: _Context, *, original: bool) -> str:
    """A zone name ``zone_of`` knows; ``original`` only where a timestamp brings its own offset."""
    if isinstance(value, int) and not isinstance(value, bool):
        cx.error(cx.loc(path), f"zone {value!r} reads as a number: quote it, as in zone: '{value:+05d}'")
        return "UTC"
    try:
        if not isinstance(value, str) or (value == "original" and not original):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name (Europe/Berlin), UTC or +hhmm")
        zone_of(value)
    except ValueError as error:
        cx.error(cx.loc(path), str(error))
        return "UTC"
    return value


def _folder_list(value: Any, path: Path, cx: _Context) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    for index, name in enumerate(value):
        _check_folder(name, path + (index,), cx, destination=False)
    return tuple(name for name in value if isinstance(name, str))


def _folder_locs(value: Any, path: Path, cx: _Context) -> tuple[Loc, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(cx.loc(path + (index,)) for index, name in enumerate(value) if isinstance(name, str))


def _check_folder(name: Any, path: Path, cx: _Context, *, destination: bool) -> None:
    problem = folder_problem(name, destination=destination)
    if problem:
        cx.error(cx.loc(path), problem)


def folder_problem(name: Any, *, destination: bool) -> str | None:
    """Why ``name`` can't be a folder in a rule file, or None.  ``/`` is the hierarchy delimiter.

    >>> folder_problem("Lists/*", destination=False) is None, folder_problem("Lists/*", destination=True)
    (True, "wildcards '*' and '%' are allowed in a rule's folders, not in the destination 'Lists/*'")
    """
    if not isinstance(name, str) or not name.strip():
        return "folder name is empty"
    if _CONTROL.search(name):
        return f"folder name {name!r} contains a control character"
    if name.startswith("/") or name.endswith("/"):
        return f"folder name {name!r} must not start or end with the hierarchy delimiter '/'"
    if "//" in name:
        return f"folder name {name!r} has an empty level ('//')"
    if destination and ("*" in name or "%" in name):
        return f"wildcards '*' and '%' are allowed in a rule's folders, not in the destination {name!r}"
    return None


# ---------------------------------------------------------------- conditions


def _when(value: Any, path: Path, cx: _Context) -> Condition:
    if value == "all":
        cx.warn(cx.loc(path), "'when: all' matches every message")
        return All((), cx.loc(path))
    return _condition(value, path, cx)


def _condition(value: Any, path: Path, cx: _Context) -> Condition:
    loc = cx.loc(path)
    if not isinstance(value, dict):
        cx.error(loc, "a condition must be a mapping of tests")
        return All((), loc)
    if not value:
        cx.warn(loc, "an empty condition matches every message")
        return All((), loc)
    tests = tuple(_test(key, item, path + (key,), cx) for key, item in value.items())
    return tests[0] if len(tests) == 1 else All(tests, loc)


def _test(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    handler = _TESTS.get(key)
    if handler is None:
        cx.error(cx.key_loc(path), f"unknown key {key!r} in condition")
        return All((), cx.key_loc(path))
    return handler(key, value, path, cx)


def _address_header(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    return _header(key, ADDRESS_HEADERS[key], value, path, cx, addresses=True)


def _text_header(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    return _header(key, TEXT_HEADERS[key], value, path, cx, addresses=False, list_id=key == "list_id")


def _named_header(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    name = value.get("name") if isinstance(value, dict) else None
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        cx.error(cx.loc(path + ("name",)), f"{name!r} is not a header name (printable ASCII without ':' or spaces)")
        name = "?"
    operands = {k: v for k, v in value.items() if k not in ("name", "index")} if isinstance(value, dict) else value
    condition = _header(key, (name,), operands, path, cx, addresses=True)
    if not isinstance(value, dict) or "index" not in value:
        return condition
    index = _index(value["index"], path + ("index",), cx)
    if isinstance(condition, HeaderExists):
        cx.error(cx.key_loc(path + ("index",)), "'index' picks one occurrence to compare; with 'exists' use count: instead")
        return condition
    return replace(condition, index=index)  # type: ignore[type-var]


def _index(value: Any, path: Path, cx: _Context) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value == 0:
        cx.error(cx.loc(path), f"index must be a whole number other than 0 (1 = first, -1 = last), not {value!r}")
        return None
    return value


def _header(
    key: str, names: tuple[str, ...], value: Any, path: Path, cx: _Context, *, addresses: bool, list_id: bool = False
) -> Condition:
    loc = cx.key_loc(path)
    if not isinstance(value, dict):
        return HeaderTest(key, names, "contains", _texts(value, path, cx), list_id=list_id, loc=loc)
    operator, operand = _single_operator(value, HEADER_OPERATORS, path, cx)
    case_sensitive = value.get("case_sensitive") is True
    if operator == "exists":
        if "case_sensitive" in value:
            cx.warn(cx.key_loc(path + ("case_sensitive",)), "case_sensitive has no effect on 'exists'")
        return HeaderExists(key, names, operand is True, loc)
    values = _texts(operand, path + (operator,), cx)
    if operator in ADDRESS_OPERATORS:
        if not addresses:
            cx.error(cx.key_loc(path + (operator,)), address_operator_message(operator, key))
        return AddressTest(key, names, operator, values, case_sensitive, loc)
    if operator == "regex":
        _check_regexes(operand, path + (operator,), cx, 0 if case_sensitive else re.IGNORECASE)
    return HeaderTest(key, names, operator, values, case_sensitive, list_id, loc)  # type: ignore[arg-type]


def address_operator_message(operator: str, key: str) -> str:
    """The §7 error for an address operator on a header that holds no addresses."""
    keys = ", ".join(ADDRESS_HEADERS)
    return f"'{operator}' is an address operator; '{key}' holds no addresses (use it on {keys} or header)"


def _single_operator(value: dict[str, Any], allowed: tuple[str, ...], path: Path, cx: _Context) -> tuple[str, Any]:
    operators = [k for k in value if k in allowed]
    if len(operators) != 1:
        where = cx.key_loc(path + (operators[1],)) if len(operators) > 1 else cx.loc(path)
        cx.error(where, f"a test needs exactly one operator of {', '.join(allowed)}; found {len(operators)}")
    return (operators[0], value[operators[0]]) if operators else ("contains", [])


def _texts(value: Any, path: Path, cx: _Context) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) for item in items):
        cx.error(cx.loc(path), "expected a text or a non-empty list of texts")
    return tuple(item for item in items if isinstance(item, str))


def _check_regexes(value: Any, path: Path, cx: _Context, flags: int) -> None:
    items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
    for index, pattern in items:
        problem = regex_problem(pattern, flags)
        if problem:
            cx.error(cx.loc(path if index is None else path + (index,)), problem)


def regex_problem(pattern: Any, flags: int = 0) -> str | None:
    """Why ``pattern`` is not a usable Python regular expression, or None.

    >>> regex_problem("(unclosed")
    "invalid regular expression '(unclosed': missing ), unterminated subpattern at position 0"
    """
    try:
        re.compile(pattern, flags)
    except re.error as exc:
        return f"invalid regular expression {pattern!r}: {exc.msg} at position {exc.pos}"
    except (TypeError, RecursionError, OverflowError, ValueError) as exc:
        return f"invalid regular expression {pattern!r}: {exc}"
    return None


RELATIONS = ("gt", "ge", "lt", "le", "eq", "ne")


def _count(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    loc = cx.key_loc(path)
    data = value if isinstance(value, dict) else {}
    if not isinstance(value, dict):
        cx.error(cx.loc(path), "count needs a mapping: {header: Received, gt: 10}")
    target = data.get("header")
    if not isinstance(target, str) or not _HEADER_NAME.fullmatch(target):
        cx.error(cx.loc(path + ("header",)), f"{target!r} is not a header name or address key")
        target = "?"
    relation, number = _single_operator(data, RELATIONS, path, cx)
    if relation not in RELATIONS:
        relation, number = "ge", 0
    elif isinstance(number, bool) or not isinstance(number, int) or number < 0:
        cx.error(cx.loc(path + (relation,)), f"count compares with a whole number of at least 0, not {number!r}")
        number = 0
    names = ADDRESS_HEADERS.get(target.lower())
    return CountTest(target, names or (target,), relation, number, names is not None, loc)  # type: ignore[arg-type]


def _body(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    loc = cx.key_loc(path)
    if not isinstance(value, dict):
        return BodyTest(key, "contains", _texts(value, path, cx), loc=loc)  # type: ignore[arg-type]
    operator, operand = _single_operator(value, BODY_OPERATORS, path, cx)
    case_sensitive = value.get("case_sensitive") is True
    if operator == "regex":
        flags = re.MULTILINE | (0 if case_sensitive else re.IGNORECASE)
        _check_regexes(operand, path + (operator,), cx, flags)
    values = _texts(operand, path + (operator,), cx)
    return BodyTest(key, operator, values, case_sensitive, loc)  # type: ignore[arg-type]


def _measure(parser: Callable[[Any], Any], value: Any, path: Path, cx: _Context) -> Any:
    try:
        return parser(value)
    except ValueError as exc:
        cx.error(cx.loc(path), str(exc))
        return None


def _size(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    size = _measure(parse_size, value, path, cx)
    return SizeTest(key, size or 0, cx.key_loc(path))  # type: ignore[arg-type]


def _age(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    seconds = _measure(parse_duration, value, path, cx)
    return AgeTest(key, seconds or 0, cx.key_loc(path))  # type: ignore[arg-type]


def _day(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    day = _measure(parse_day, value, path, cx)
    source = "sent" if key.startswith("sent_") else "arrival"
    operator = key.removeprefix("sent_")
    return DateTest(source, operator, day or parse_day("1970-01-01"), cx.key_loc(path))  # type: ignore[arg-type]


_PART_RANGES = {"year": (0, 9999), "month": (1, 12), "day": (1, 31), "hour": (0, 23), "minute": (0, 59)}


def _date_parts(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    loc = cx.key_loc(path)
    data = value if isinstance(value, dict) else {}
    if not isinstance(value, dict) or not set(data) - {"zone"}:
        cx.error(cx.loc(path), f"'{key}' needs date parts: {{weekday: [sat, sun]}}, {{hour: {{ge: 18}}}}…")
    zone = _zone(data.get("zone", "UTC"), path + ("zone",), cx, original=True)
    checks = []
    for part, item in data.items():
        if part == "zone":
            continue
        if part == "weekday":
            checks.append(PartCheck("weekday", _weekdays(item, path + (part,), cx)))
        elif part in _PART_RANGES:
            checks.append(_part_check(part, item, path + (part,), cx))
        else:
            cx.error(cx.key_loc(path + (part,)), f"unknown date part {part!r}; use weekday, year, month, day, hour, minute or zone")
    order = ("weekday", "year", "month", "day", "hour", "minute")  # one form however the file orders them
    checks.sort(key=lambda check: order.index(check.part))
    return DatePartTest("sent" if key == "sent" else "arrival", tuple(checks), zone, loc)


def _weekdays(value: Any, path: Path, cx: _Context) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value]
    days = [item.lower()[:3] if isinstance(item, str) else None for item in items]
    if not items or any(day not in WEEKDAYS for day in days):
        cx.error(cx.loc(path), f"weekday takes day names ({', '.join(WEEKDAYS)}), not {value!r}")
    return tuple(sorted({WEEKDAYS.index(day) for day in days if day in WEEKDAYS}))


def _part_check(part: str, value: Any, path: Path, cx: _Context) -> PartCheck:
    low, high = _PART_RANGES[part]

    def number(item: Any, where: Path) -> int | None:
        if isinstance(item, bool) or not isinstance(item, int) or not low <= item <= high:
            cx.error(cx.loc(where), f"{part} takes whole numbers from {low} to {high}, not {item!r}")
            return None
        return item

    if isinstance(value, dict):
        relations = [(relation, number(item, path + (relation,))) for relation, item in value.items()]
        for relation, _ in relations:
            if relation not in RELATIONS:
                cx.error(cx.key_loc(path + (relation,)), f"unknown relation {relation!r}; use {', '.join(RELATIONS)}")
        valid = tuple((r, n) for r, n in relations if r in RELATIONS and n is not None)
        if not value:
            cx.error(cx.loc(path), f"{part} needs a number, a list of numbers or relations like {{ge: 18}}")
        return PartCheck(part, (), valid)  # type: ignore[arg-type]
    items = value if isinstance(value, list) else [value]
    values = tuple(n for index, item in enumerate(items) if (n := number(item, path + (index,) if isinstance(value, list) else path)) is not None)
    if not items:
        cx.error(cx.loc(path), f"{part} needs a number, a list of numbers or relations like {{ge: 18}}")
    return PartCheck(part, tuple(sorted(set(values))))  # type: ignore[arg-type]


def _system_flag(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    if not isinstance(value, bool):
        cx.error(cx.loc(path), f"'{key}' must be true or false")
    return FlagTest(SYSTEM_FLAGS[key], value is True, cx.key_loc(path))


def _keyword(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    loc = cx.key_loc(path)
    tests = tuple(FlagTest(flag, True, loc) for flag in _flags(value, path, cx))
    return tests[0] if len(tests) == 1 else All(tests, loc)


def _attachment(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    if not isinstance(value, bool):
        cx.error(cx.loc(path), "'has_attachment' must be true or false")
    return AttachmentTest(value is True, cx.key_loc(path))


def _attachment_parts(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    loc = cx.key_loc(path)
    data = value if isinstance(value, dict) else {}
    if not data.keys() & {"filename", "type", "larger", "smaller"}:
        cx.error(cx.loc(path), "attachment needs filename:, type:, larger: or smaller: (for any attachment use has_attachment)")
    operator, filenames, case_sensitive = None, (), False
    if "filename" in data:
        test = _header(key, ("filename",), data["filename"], path + ("filename",), cx, addresses=False)
        if isinstance(test, HeaderTest):
            operator, filenames, case_sensitive = test.operator, test.values, test.case_sensitive
        elif isinstance(test, HeaderExists):
            cx.error(cx.key_loc(path + ("filename",)), "filename takes contains, is, matches or regex")
    types = _types(data["type"], path + ("type",), cx) if "type" in data else ()
    sizes = {k: _measure(parse_size, data[k], path + (k,), cx) for k in SIZE_KEYS if k in data}
    return AttachmentPartTest(operator, filenames, case_sensitive, types, sizes.get("larger"), sizes.get("smaller"), loc)  # type: ignore[arg-type]


_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+(/([a-z0-9!#$&^_.+-]+|\*))?")


def _types(value: Any, path: Path, cx: _Context) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    types = tuple(item.strip().lower() for item in items if isinstance(item, str))
    if not items or len(types) != len(items) or not all(_MEDIA_TYPE.fullmatch(t) for t in types):
        cx.error(cx.loc(path), f"type takes media types like application/pdf, image/* or image, not {value!r}")
    return types


def _mime_header(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    data = value if isinstance(value, dict) else {}
    name = data.get("name")
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        cx.error(cx.loc(path + ("name",)), f"{name!r} is not a header name (printable ASCII without ':' or spaces)")
        name = "?"
    if data.get("part", "any") != "any":
        cx.error(cx.loc(path + ("part",)), f"part: {data.get('part')!r} — only 'any' (every MIME part) is supported")
    operands = {k: v for k, v in data.items() if k not in ("name", "part")}
    test = _header(key, (name,), operands, path, cx, addresses=False)
    loc = cx.key_loc(path)
    if isinstance(test, HeaderExists):
        return MimeHeaderTest(name, "exists", (), False, test.present, loc)
    if isinstance(test, HeaderTest):
        return MimeHeaderTest(name, test.operator, test.values, test.case_sensitive, True, loc)
    return MimeHeaderTest(name, "contains", (), loc=loc)


def _combinator(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    loc = cx.key_loc(path)
    items = value if isinstance(value, list) else []
    if not items:
        meaning = "matches every message" if key == "all" else "matches no message"
        cx.warn(loc, f"'{key}: []' {meaning}")
    children = tuple(_condition(item, path + (index,), cx) for index, item in enumerate(items))
    return All(children, loc) if key == "all" else AnyOf(children, loc)


def _negation(key: str, value: Any, path: Path, cx: _Context) -> Condition:
    return Not(_condition(value, path, cx), cx.key_loc(path))


_TestHandler = Callable[[str, Any, Path, _Context], Condition]
_TESTS: Mapping[str, _TestHandler] = {
    **{key: _address_header for key in ADDRESS_HEADERS},
    **{key: _text_header for key in TEXT_HEADERS},
    "header": _named_header,
    "count": _count,
    "sent": _date_parts,
    "arrived": _date_parts,
    "body": _body,
    "text": _body,
    **{key: _size for key in SIZE_KEYS},
    **{key: _age for key in AGE_KEYS},
    **{key: _day for key in DAY_KEYS},
    **{key: _system_flag for key in SYSTEM_FLAGS},
    "keyword": _keyword,
    "has_attachment": _attachment,
    "attachment": _attachment_parts,
    "mime_header": _mime_header,
    "all": _combinator,
    "any": _combinator,
    "not": _negation,
}


# ---------------------------------------------------------------- flags


def _flags(value: Any, path: Path, cx: _Context) -> tuple[str, ...]:
    items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
    flags: list[str] = []
    for index, name in items:
        problem = flag_problem(name)
        if problem:
            cx.error(cx.loc(path if index is None else path + (index,)), problem)
        elif canonical_flag(name) not in flags:
            flags.append(canonical_flag(name))
    return tuple(flags)


def flag_problem(name: Any) -> str | None:
    """Why ``name`` can't be a flag or keyword, or None.

    >>> flag_problem("$Invoice") is None, flag_problem("\\\\Seen") is None
    (True, True)
    >>> print(flag_problem("my label"))
    flag 'my label' may not contain spaces or any of ( ) { % * " \\ ]
    """
    if not isinstance(name, str) or not name:
        return "a flag name must be a non-empty text"
    if name.startswith("\\"):
        if name[1:].lower() in SYSTEM_FLAGS:
            return None
        return f"unknown system flag {name!r}; system flags are {', '.join(SYSTEM_FLAGS)}"
    if not name.isascii() or not name.isprintable():
        return f"flag {name!r} must be printable ASCII (IMAP keywords are atoms)"
    if " " in name or _ATOM_SPECIALS & set(name):
        return f"flag {name!r} may not contain spaces or any of ( ) {{ % * \" \\ ]"
    return None


# ---------------------------------------------------------------- actions


def _actions(value: Any, path: Path, cx: _Context) -> tuple[Action, ...]:
    items = value if isinstance(value, list) else []
    if not items:
        cx.error(cx.loc(path), "'then' needs at least one action")
    actions = tuple(action for index, item in enumerate(items) if (action := _action(item, path + (index,), cx)))
    _check_placements(actions, cx)
    return actions


def _action(item: Any, path: Path, cx: _Context) -> Action | None:
    loc = cx.loc(path)
    if isinstance(item, str) and item in BARE_ACTIONS:
        return {"delete": Delete(loc), "trash": Trash(cx.defaults.trash_folder, loc, use="\\Trash"), "stop": Stop(loc)}[item]
    if not isinstance(item, dict) or len(item) != 1 or next(iter(item)) not in _ACTIONS:
        cx.error(loc, f"unknown action {item!r}")
        return None
    ((key, value),) = item.items()
    return _ACTIONS[key](value, path + (key,), loc, cx)


def _placement(kind: type[Move] | type[Copy] | type[Trash]) -> Callable[[Any, Path, Loc, _Context], Action]:
    def build(value: Any, path: Path, loc: Loc, cx: _Context) -> Action:
        _check_folder(value, path, cx, destination=True)
        return kind(value if isinstance(value, str) else "", loc)

    return build


def _flag_action(kind: type[AddFlags] | type[RemoveFlags]) -> Callable[[Any, Path, Loc, _Context], Action]:
    def build(value: Any, path: Path, loc: Loc, cx: _Context) -> Action:
        return kind(_flags(value, path, cx), loc)

    return build


def _redirect(value: Any, path: Path, loc: Loc, cx: _Context) -> Action:
    if not isinstance(value, str) or not _ADDR_SPEC.fullmatch(value):
        cx.error(cx.loc(path), f"redirect needs a plain address like someone@example.com, not {value!r}")
    return Redirect(value if isinstance(value, str) else "", loc)


def _reply(value: Any, path: Path, loc: Loc, cx: _Context) -> Action:
    data = value if isinstance(value, dict) else {}
    if set(data) >= {"template", "body"} or not set(data) & {"template", "body"}:
        cx.error(loc, "a reply needs exactly one of 'template' (a file) or 'body' (inline text)")
    return Reply(
        subject=_reply_subject(data.get("subject"), path + ("subject",), cx),
        body=_inline_template(data.get("body"), path + ("body",), cx),
        template=_template_file(data.get("template"), path + ("template",), cx),
        sender=_reply_sender(data.get("from"), path + ("from",), cx),
        once_per_seconds=_measure(parse_duration, data.get("once_per", "7d"), path + ("once_per",), cx) or 0,
        save_to=_save_to(data.get("save_to"), path + ("save_to",), cx),
        require_recipient=data.get("require_recipient", True) is not False,
        loc=loc,
    )


def _reply_subject(value: Any, path: Path, cx: _Context) -> str | None:
    if isinstance(value, str) and ("\n" in value.strip() or "\r" in value):
        cx.error(cx.loc(path), "the reply subject must be a single line")
    return _inline_template(value, path, cx)


def _inline_template(value: Any, path: Path, cx: _Context) -> str | None:
    if not isinstance(value, str):
        return None
    cx.templates.append(TemplateRef(cx.base_dir, cx.loc(path), source=value, shown_as=str(path[-1])))
    return value


def _template_file(value: Any, path: Path, cx: _Context) -> str | None:
    if not isinstance(value, str):
        return None
    if _CONTROL.search(value):
        cx.error(cx.loc(path), f"template path {value!r} contains a control character")
        return None
    full = os.path.normpath(os.path.join(cx.base_dir, os.path.expanduser(value)))
    if os.path.isabs(os.path.expanduser(value)) or os.path.commonpath([full, cx.base_dir]) != cx.base_dir:
        cx.error(
            cx.loc(path),
            f"template {value!r} must be a path inside the rule file's folder, written relative to it",
        )
        return full
    cx.templates.append(TemplateRef(cx.base_dir, cx.loc(path), path=full, shown_as=value))
    return full


def _reply_sender(value: Any, path: Path, cx: _Context) -> str | None:
    if value is None:
        return None
    address = parseaddr(value)[1] if isinstance(value, str) and "\n" not in value else ""
    if not _ADDR_SPEC.fullmatch(address):
        example = "alice@example.com or 'Alice <alice@example.com>'"
        cx.error(cx.loc(path), f"'from' needs an address like {example}, not {value!r}")
    return value if isinstance(value, str) else None


def _save_to(value: Any, path: Path, cx: _Context) -> str | None:
    if value is None:
        return None
    _check_folder(value, path, cx, destination=True)
    return value if isinstance(value, str) else None


_ActionHandler = Callable[[Any, Path, Loc, _Context], Action]
_ACTIONS: Mapping[str, _ActionHandler] = {
    "move": _placement(Move),
    "copy": _placement(Copy),
    "trash": _placement(Trash),
    "flag": _flag_action(AddFlags),
    "unflag": _flag_action(RemoveFlags),
    "reply": _reply,
    "redirect": _redirect,
}


def _check_placements(actions: tuple[Action, ...], cx: _Context) -> None:
    # §7: a message can end up in one place only; `stop` may accompany any placement.
    placements = [action for action in actions if isinstance(action, (Move, Trash, Delete))]
    for extra in placements[1:]:
        first = placements[0]
        cx.error(
            extra.loc,
            f"a rule may do only one of move, trash and delete; '{_action_word(extra)}' "
            f"conflicts with '{_action_word(first)}' at line {first.loc.line}",
        )


def _action_word(action: Action) -> str:
    return type(action).__name__.lower()
