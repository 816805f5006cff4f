"""The bundled JSON Schemas, and their errors as sentences at the offending node.

Shared by every YAML file mailrules reads (rule files, accounts, rule tests): each takes a
schema by name and may pass ``SchemaHints`` for wording of its own.  An unknown key is
reported at the key with a suggestion; a key that only looks missing because another was
misspelt is not reported twice.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from mailrules.errors import Loc, Problem
from mailrules.yamlsrc import LocIndex, Path, YamlDocument


@lru_cache(maxsize=None)
def _schema_text(name: str) -> str:
    return (resources.files("mailrules") / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8")


def load_schema(name: str) -> dict[str, Any]:
    """A bundled JSON Schema (``rules``, ``accounts`` or ``ruletest``), read from the installed package.

    >>> load_schema("rules")["$id"]
    'https://mailrules.dev/schemas/rules.schema.json'
    """
    return json.loads(_schema_text(name))


@lru_cache(maxsize=None)
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name))


@dataclass(frozen=True, slots=True)
class SchemaHints:
    """File-specific wording: ``value`` may replace the message of any schema error,
    ``unknown_key(path, key)`` the message for an unknown key.  None keeps the generic one."""

    value: Callable[[ValidationError], str | None] = lambda error: None
    unknown_key: Callable[[Path, str], str | None] = lambda path, key: None


@dataclass(frozen=True, slots=True)
class Finding:
    path: Path
    problem: Problem
    kind: str = "other"  # "unknown" key, "missing" key, missing "choice" of keys, or "other"
    key: str = ""  # the unknown or missing key


def schema_problems(doc: YamlDocument, schema: str, hints: SchemaHints = SchemaHints()) -> list[Problem]:
    """Every way ``doc`` breaks the bundled schema ``schema``, as located problems."""
    return [finding.problem for finding in schema_findings(doc, schema, hints)]


def schema_findings(doc: YamlDocument, schema: str, hints: SchemaHints) -> list[Finding]:
    findings: list[Finding] = []
    for error in _validator(schema).iter_errors(doc.data):
        findings.extend(_explain(error, doc.locs, hints))
    kept = [finding for finding in findings if not _is_followup(finding, findings)]
    return list({(f.problem.loc, f.problem.message): f for f in kept}.values())


def _is_followup(finding: Finding, findings: list[Finding]) -> bool:
    # A misspelt key also makes a required key look missing; the spelling is the news.
    unknown = [f.key for f in findings if f.kind == "unknown" and f.path == finding.path]
    if finding.kind == "choice":
        return bool(unknown)
    return finding.kind == "missing" and bool(difflib.get_close_matches(finding.key, unknown, n=1, cutoff=0.6))


def _explain(error: ValidationError, locs: LocIndex, hints: SchemaHints) -> list[Finding]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        return list(_unknown_keys(error, path, locs, hints))
    custom = hints.value(error)
    if custom:
        return [Finding(path, Problem(_error_loc(error, path, locs), custom))]
    if error.validator in ("oneOf", "anyOf"):
        return _alternatives(error, path, locs, hints)
    if error.validator == "required":
        return list(_missing(error, path, locs))
    return [Finding(path, Problem(_error_loc(error, path, locs), _sentence(error, path)))]


def _error_loc(error: ValidationError, path: Path, locs: LocIndex) -> Loc:
    """Where to point: at the offending key when one key is to blame, else at the value."""
    if not isinstance(error.instance, dict):
        return locs.at(path)
    if error.validator == "dependentRequired":
        culprits = [key for key in error.validator_value if key in error.instance]
    elif error.validator in ("oneOf", "anyOf"):
        culprits = [key for key in error.instance if key in (_required_choices(error.validator_value) or ())][1:]
    else:
        culprits = []
    return locs.key(path + (culprits[0],)) if culprits else locs.at(path)


def _unknown_keys(error: ValidationError, path: Path, locs: LocIndex, hints: SchemaHints) -> Iterator[Finding]:
    allowed = list(error.schema.get("properties", {}))
    for key in error.instance:
        if key in allowed:
            continue
        message = hints.unknown_key(path, key) or _unknown_key_message(key, allowed, error.schema.get("title"))
        yield Finding(path, Problem(locs.key(path + (key,)), message), "unknown", key)


def _unknown_key_message(key: str, allowed: list[str], title: str | None) -> str:
    message = f"unknown key {key!r}" + (f" in {title}" if title else "")
    suggestion = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if suggestion:
        return f"{message}; did you mean {suggestion[0]!r}?"
    if allowed and len(allowed) <= 12:
        return f"{message}; expected one of {', '.join(allowed)}"
    return message


def _missing(error: ValidationError, path: Path, locs: LocIndex) -> Iterator[Finding]:
    title = error.schema.get("title", "mapping")
    name = error.instance.get("name")
    owner = f"{title} {name!r}" if isinstance(name, str) else title
    for key in error.validator_value:
        if key not in error.instance:
            yield Finding(path, Problem(locs.at(path), f"missing {key!r} in {owner}"), "missing", key)


def _alternatives(error: ValidationError, path: Path, locs: LocIndex, hints: SchemaHints) -> list[Finding]:
    choices = _required_choices(error.validator_value)
    if choices and isinstance(error.instance, dict):
        return [_choice_finding(error.instance, choices, path, locs)]
    best = best_match(error.context)
    if best is None:
        return [Finding(path, Problem(locs.at(path), f"{_field(path)} fits more than one of its allowed forms"))]
    return _explain(best, locs, hints)


def _required_choices(subschemas: Any) -> list[str] | None:
    # `oneOf: [{required: [a]}, {required: [b]}]` is how the schemas say "exactly one of a, b".
    if not isinstance(subschemas, list):
        return None
    if all(isinstance(s, dict) and set(s) == {"required"} and len(s["required"]) == 1 for s in subschemas):
        return [s["required"][0] for s in subschemas]
    return None


def _choice_finding(instance: dict[str, Any], choices: list[str], path: Path, locs: LocIndex) -> Finding:
    present = [key for key in instance if key in choices]
    options = ", ".join(choices)
    if not present:
        return Finding(path, Problem(locs.at(path), f"{_field(path)} needs one of {options}"), "choice")
    found = " and ".join(repr(key) for key in present)
    message = f"{_field(path)} takes only one of {options}; found {found}"
    return Finding(path, Problem(locs.key(path + (present[1],)), message))


_TYPE_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "empty",
}


def _sentence(error: ValidationError, path: Path) -> str:
    field_name, value, rule = _field(path), error.instance, error.validator_value
    match error.validator:
        case "type":
            expected = [rule] if isinstance(rule, str) else list(rule)
            wanted = _either(_TYPE_WORDS.get(t, t) for t in expected)
            return f"{field_name} must be {wanted}, not {describe_value(value, expected)}"
        case "enum":
            wanted = _either(repr(option) for option in rule)
            return f"{field_name} must be {wanted}, not {show_value(value)}{suggest(value, rule)}"
        case "const":
            return f"{field_name} must be {rule!r}, not {show_value(value)}"
        case "minItems" | "minProperties" | "minLength" if rule == 1:
            return f"{field_name} must not be empty"
        case "minLength":
            return f"{field_name} needs at least {rule} characters, not {show_value(value)}"
        case "minItems" | "minProperties":
            return f"{field_name} needs at least {rule} entries"
        case "maxProperties" if isinstance(value, dict):
            keys = ", ".join(repr(key) for key in value)
            return f"{field_name} must have only one key, found {keys}; write each as its own list item"
        case "minimum" | "maximum":
            word = "at least" if error.validator == "minimum" else "at most"
            return f"{field_name} must be {word} {rule}"
        case "pattern":
            return f"{field_name}: {show_value(value)} does not have the expected form ({rule})"
        case "dependentRequired" if isinstance(value, dict):
            pairs = [(key, need) for key, needs in rule.items() if key in value for need in needs if need not in value]
            return "; ".join(f"{key!r} needs {need!r}" for key, need in pairs) or error.message
    return f"{field_name}: {error.message}"


def _field(path: Path) -> str:
    if not path:
        return "the file"
    last = path[-1]
    if isinstance(last, int):
        return f"item {last + 1} of {path[-2]!r}" if len(path) > 1 else f"item {last + 1}"
    return repr(last)


def _either(words: Iterable[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def describe_value(value: Any, expected: list[str]) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        quote = " (YAML reads unquoted yes, no, on, off as true/false; put the word in quotes)"
        return str(value).lower() + (quote if "string" in expected else "")
    if isinstance(value, (int, float)):
        return f"the number {value}" + (" (put it in quotes to mean text)" if "string" in expected else "")
    return {str: "a string", list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def show_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def suggest(value: Any, options: Iterable[Any]) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [str(option) for option in options], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# ---------------------------------------------------------------- rule-file wording
