"""Rule files from disk to a checked ``RuleSet``, with every problem as ``file:line:col: message``.

The steps, each reporting all it finds before anything is given up:

1. ``yamlsrc`` reads the file and remembers where every value and key was written;
2. the bundled JSON Schema checks shapes, and each schema error becomes a sentence
   at the offending node (an unknown key is reported at the key, with a suggestion);
3. includes are followed depth-first, relative to the including file;
4. ``parse`` builds the AST of every part the schema accepted and checks meanings;
5. checks across rules and files: unique names, template files, unreachable rules.

The schema's error wording (schema.py) is shared with the other YAML files mailrules reads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jsonschema.exceptions import ValidationError

from mailrules.errors import Loc, Problem, RuleFileError, UsageError
from mailrules.schema import (
    Finding,
    SchemaHints,
    describe_value,
    schema_findings,
    schema_problems,
    show_value,
    suggest,
)
from mailrules.model import All, Any as AnyOf, Not, Rule, RuleSet
from mailrules.parse import (
    ACTIONS_WITH_ARGUMENT,
    ADDRESS_OPERATORS,
    AGE_KEYS,
    DAY_KEYS,
    HEADER_OPERATORS,
    SIZE_KEYS,
    TEXT_HEADERS,
    ParsedFile,
    TemplateRef,
    address_operator_message,
    parse_rule_file,
)
from mailrules.templates import check_template_source, make_environment, template_problem
from mailrules.units import parse_day, parse_duration, parse_size
from mailrules.yamlsrc import Path, YamlDocument, read_yaml

MAX_INCLUDE_DEPTH = 32


def _rule_value_hint(error: ValidationError) -> str | None:
    path = tuple(error.absolute_path)
    key = path[-1] if path else None
    value = error.instance
    if error.validator in ("pattern", "type") and key in _MEASURES:
        return _measure_message(_MEASURES[key], value)
    if error.validator == "pattern" and key == "name":
        return f"rule name {show_value(value)} may contain only letters, digits, '_', '.' and '-'"
    if error.validator == "enum" and value in ACTIONS_WITH_ARGUMENT:
        return f"action '{value}' needs a value: write '- {value}: ...'"
    if error.validator == "enum" and isinstance(value, str):
        suggestion = suggest(value, [*ACTIONS_WITH_ARGUMENT, "delete", "stop"])
        return f"unknown action {show_value(value)}{suggestion or _ACTION_LIST}"
    if error.validator in ("const", "type") and key == "when":
        shown = show_value(value) if isinstance(value, str) else describe_value(value, ["object"])
        return f"'when' must be a mapping of conditions or the word 'all', not {shown}"
    if error.validator == "const" and path == ("version",):
        return f"unsupported rule-file version {show_value(value)}; this mailrules reads version 1"
    if error.validator == "required" and path == () and "version" not in value:
        return "missing 'version: 1' at the top of the rule file"
    if error.validator == "oneOf" and isinstance(value, dict):
        operators = [k for k in value if k in HEADER_OPERATORS]
        if len(operators) > 1:
            found = ", ".join(operators)
            return f"a test takes one operator, found {found}; combine tests with 'all: [...]' or 'any: [...]'"
    return None


def _rule_unknown_key_hint(path: Path, key: str) -> str | None:
    if key in ADDRESS_OPERATORS and path and path[-1] in TEXT_HEADERS:
        return address_operator_message(key, str(path[-1]))
    if len(path) >= 2 and path[-2] == "then":
        if key in ("delete", "stop"):
            return f"'{key}' takes no value: write '- {key}'"
        return f"unknown action {key!r}{suggest(key, ACTIONS_WITH_ARGUMENT) or _ACTION_LIST}"
    return None


_ACTION_LIST = "; actions are " + ", ".join([*ACTIONS_WITH_ARGUMENT, "delete", "stop"])


_MEASURES: dict[Any, Callable[[Any], Any]] = {
    **{key: parse_size for key in SIZE_KEYS},
    **{key: parse_duration for key in (*AGE_KEYS, "once_per")},
    **{key: parse_day for key in DAY_KEYS},
}


def _measure_message(parser: Callable[[Any], Any], value: Any) -> str | None:
    try:
        parser(value)
    except ValueError as exc:
        return str(exc)
    return None


RULE_HINTS = SchemaHints(_rule_value_hint, _rule_unknown_key_hint)


# ---------------------------------------------------------------- documents


def load_yaml_document(
    path: str | os.PathLike[str], schema: str | None = None, hints: SchemaHints = SchemaHints()
) -> YamlDocument:
    """Read a YAML file and, if ``schema`` is given, check it against that bundled schema.

    Raises ``UsageError`` when the file cannot be read and ``RuleFileError`` with every
    problem of its content.  ``(data, locs) = load_yaml_document(...)`` unpacks the result.
    """
    try:
        doc = read_yaml(path)
    except OSError as exc:
        raise UsageError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
    problems = schema_problems(doc, schema, hints) if schema else []
    if problems:
        raise RuleFileError(problems)
    return doc


# ---------------------------------------------------------------- rule sets


@dataclass(frozen=True, slots=True)
class LoadResult:
    ruleset: RuleSet
    warnings: list[Problem]


@dataclass(frozen=True, slots=True)
class _Include:
    path: str  # as shown in messages: joined to the including file's path
    loc: Loc


@dataclass
class _Tree:
    """What loading a file and its includes has found so far."""

    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    first_included_at: dict[str, Loc] = field(default_factory=dict)


def load_ruleset(path: str | os.PathLike[str]) -> LoadResult:
    """Load a rule file and its includes; raise ``RuleFileError`` listing every problem of all files.

    Warnings (they don't stop a load) come back with the rule set; with errors they are
    part of the raised problems.
    """
    top = os.fspath(path)
    tree = _Tree()
    parsed = _load_file(top, ((os.path.realpath(top), top),), None, tree)
    rules = tuple(rule for file in parsed for rule in file.rules)
    tree.problems += _cross_file_problems(rules, [ref for file in parsed for ref in file.templates])
    if not rules and not tree.problems:
        tree.problems.append(Problem(Loc(top, 1, 1), "the rule file has no rules", "warning"))
    if any(problem.severity == "error" for problem in tree.problems):
        raise RuleFileError(tree.problems)
    account = parsed[-1].account if parsed and parsed[-1].file == top else None
    ruleset = RuleSet(rules, tuple(tree.files), account)
    return LoadResult(ruleset, sorted(tree.problems, key=lambda p: (p.loc, p.message)))


def _load_file(display: str, chain: tuple[tuple[str, str], ...], via: Loc | None, tree: _Tree) -> list[ParsedFile]:
    doc = _read_rule_file(display, via, tree)
    if doc is None:
        return []
    tree.files.append(display)
    findings = schema_findings(doc, "rules", RULE_HINTS)
    tree.problems += [finding.problem for finding in findings]
    parsed = [p for include in _includes(doc) for p in _load_include(include, chain, tree)]
    own = parse_rule_file(doc, skip=_invalid_parts(findings))
    tree.problems += own.problems
    return parsed + [own]


def _read_rule_file(display: str, via: Loc | None, tree: _Tree) -> YamlDocument | None:
    try:
        return read_yaml(display)
    except OSError as exc:
        reason = "file not found" if isinstance(exc, FileNotFoundError) else (exc.strerror or str(exc))
        if via is None:
            raise UsageError(f"cannot read rule file {display}: {reason}") from None
        tree.problems.append(Problem(via, f"cannot include {display}: {reason}"))
    except RuleFileError as exc:
        tree.problems += exc.problems
    return None


def _includes(doc: YamlDocument) -> list[_Include]:
    entries = doc.data.get("include") if isinstance(doc.data, dict) else None
    if not isinstance(entries, list):
        return []
    here = os.path.dirname(doc.locs.file)
    return [
        _Include(os.path.normpath(os.path.join(here, os.path.expanduser(entry))), doc.locs.at(("include", index)))
        for index, entry in enumerate(entries)
        if isinstance(entry, str) and entry
    ]


def _load_include(include: _Include, chain: tuple[tuple[str, str], ...], tree: _Tree) -> list[ParsedFile]:
    if "\0" in include.path:
        tree.problems.append(Problem(include.loc, "an include path cannot contain a NUL character"))
        return []
    real = os.path.realpath(include.path)
    reals = [file for file, _ in chain]
    if real in reals:
        cycle = [shown for _, shown in chain[reals.index(real) :]] + [include.path]
        tree.problems.append(Problem(include.loc, f"include cycle: {' -> '.join(cycle)}"))
        return []
    if real in tree.first_included_at:
        first = tree.first_included_at[real]
        message = f"{include.path} is already included at {first}; its rules are used once, where first included"
        tree.problems.append(Problem(include.loc, message, "warning"))
        return []
    if len(chain) > MAX_INCLUDE_DEPTH:
        tree.problems.append(Problem(include.loc, f"includes are nested more than {MAX_INCLUDE_DEPTH} deep"))
        return []
    tree.first_included_at[real] = include.loc
    return _load_file(include.path, chain + ((real, include.path),), include.loc, tree)


def _invalid_parts(findings: list[Finding]) -> frozenset[Path]:
    """The defaults and rules the schema rejected: parsing them would only repeat its findings."""
    parts = set()
    for finding in findings:
        if finding.path[:1] == ("defaults",):
            parts.add(("defaults",))
        elif finding.path[:1] == ("rules",) and len(finding.path) >= 2:
            parts.add(finding.path[:2])
    return frozenset(parts)


# ---------------------------------------------------------------- checks across rules and files


def _cross_file_problems(rules: tuple[Rule, ...], templates: list[TemplateRef]) -> list[Problem]:
    return [*_duplicate_names(rules), *_template_problems(templates), *_unreachable_rules(rules)]


def _duplicate_names(rules: tuple[Rule, ...]) -> Iterator[Problem]:
    first: dict[str, Rule] = {}
    for rule in rules:
        if rule.name in first:
            yield Problem(rule.loc, f"duplicate rule name {rule.name!r}; first defined at {first[rule.name].loc}")
        else:
            first[rule.name] = rule


def _template_problems(templates: list[TemplateRef]) -> Iterator[Problem]:
    environments = {base: make_environment(base) for base in {ref.base_dir for ref in templates}}
    for ref in templates:
        source, problem = (ref.source, None) if ref.path is None else _read_template(ref)
        if problem is None and source is not None:
            error = check_template_source(source, environments[ref.base_dir])
            problem = f"template {ref.shown_as}: {error}" if error else None
            if problem is None and (undefined := template_problem(ref, source, environments[ref.base_dir])):
                yield undefined
        if problem:
            yield Problem(ref.loc, problem)


def _read_template(ref: TemplateRef) -> tuple[str | None, str | None]:
    assert ref.path is not None
    try:
        with open(ref.path, encoding="utf-8") as stream:
            return stream.read(), None
    except FileNotFoundError:
        return None, f"template file {ref.shown_as!r} not found (looked for {ref.path})"
    except UnicodeDecodeError:
        return None, f"template file {ref.shown_as!r} is not valid UTF-8 text"
    except OSError as exc:
        return None, f"cannot read template file {ref.shown_as!r}: {exc.strerror or exc}"


def _unreachable_rules(rules: tuple[Rule, ...]) -> Iterator[Problem]:
    blockers: list[Rule] = []
    for rule in rules:
        if not rule.enabled:
            continue
        blocker = next((b for b in blockers if _covers(b.folders, rule.folders)), None)
        if blocker is not None:
            yield Problem(
                rule.loc,
                f"rule {rule.name!r} can never apply: rule {blocker.name!r} ({blocker.loc}) "
                "matches every message in its folders and ends processing",
                "warning",
            )
        elif rule.terminal and _matches_everything(rule.when):
            blockers.append(rule)


def _matches_everything(condition: Any) -> bool:
    if isinstance(condition, All):
        return all(_matches_everything(child) for child in condition.children)
    return isinstance(condition, Not) and isinstance(condition.child, AnyOf) and not condition.child.children


def _covers(patterns: tuple[str, ...], folders: tuple[str, ...]) -> bool:
    return all(any(_pattern_covers(pattern, folder) for pattern in patterns) for folder in folders)


def _pattern_covers(pattern: str, folder: str) -> bool:
    if _inbox_folded(pattern) == _inbox_folded(folder):
        return True
    if "*" in folder or "%" in folder:
        return pattern == "*"
    return _glob_regex(_inbox_folded(pattern)).fullmatch(_inbox_folded(folder)) is not None


def _inbox_folded(name: str) -> str:
    # INBOX is the one case-insensitive folder name (RFC 3501 §5.1).
    head, sep, rest = name.partition("/")
    return ("INBOX" if head.upper() == "INBOX" else head) + sep + rest


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c) for c in pattern)
    return re.compile("".join(parts))
