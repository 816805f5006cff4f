"""Hypothesis strategies for rule files: documents shaped by the rule-file schema, and ways to spoil them.

``rule_documents()`` builds values the schema mostly accepts (its keys, value kinds and
nesting), with text drawn from everywhere: unicode, regexes that don't compile, Jinja2
that doesn't parse, folder names with odd characters.  ``hostile_rule_files()`` turns such
a document into the bytes of a file and then spoils it, on the value (wrong types, unknown
keys, huge strings, deep nesting) or on the text (invalid UTF-8, tabs, anchors and aliases,
custom tags, truncation, several documents).
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import strategies as st

SYSTEM_FLAGS = ("seen", "answered", "flagged", "deleted", "draft")
ADDRESS_KEYS = ("from", "to", "cc", "bcc", "reply_to", "sender", "recipient")
TEXT_KEYS = ("subject", "list_id")
STRING_OPERATORS = ("contains", "is", "matches", "regex")
ADDRESS_OPERATORS = ("address", "domain", "localpart", "display_name")
REGEXES = ("^Invoice", "(unclosed", "[a-", "(a+)+$", r"\d{3,}", "(?P<x>a)(?P=x)", "*", r"\N{BOGUS}", "(?i)ß")
JINJA = ("Auto: {{ message.subject }}", "{{ unclosed", "{% for x in message.headers %}{{x}}{% endfor %}",
         "{{ undefined_variable }}", "{% raw %}", "{{ message.__class__.__mro__ }}")

words = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
names = st.from_regex(r"\A[A-Za-z0-9_.-]{1,20}\Z")
folders = st.one_of(st.sampled_from(["INBOX", "Lists/*", "Archive/%", "Trash", "a/b/c", "Ünïcødé", "with space"]), words)
texts = st.one_of(words, st.sampled_from(REGEXES), st.sampled_from(JINJA))


def one_or_many(element: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(element, st.lists(element, min_size=1, max_size=3))


def operator_test(operators: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    string_ops = st.sampled_from(operators).flatmap(lambda op: st.fixed_dictionaries({op: one_or_many(texts)}))
    return st.one_of(string_ops, st.fixed_dictionaries({"exists": st.booleans()})).flatmap(
        lambda test: st.fixed_dictionaries({k: st.just(v) for k, v in test.items()},
                                           optional={"case_sensitive": st.booleans()})
    )


def header_value(operators: tuple[str, ...]) -> st.SearchStrategy[Any]:
    return st.one_of(texts, st.lists(texts, min_size=1, max_size=3), operator_test(operators))


def leaf_conditions() -> st.SearchStrategy[dict[str, Any]]:
    address = st.tuples(st.sampled_from(ADDRESS_KEYS), header_value(STRING_OPERATORS + ADDRESS_OPERATORS))
    text = st.tuples(st.sampled_from(TEXT_KEYS), header_value(STRING_OPERATORS))
    header = st.tuples(st.just("header"), operator_test(STRING_OPERATORS + ADDRESS_OPERATORS).flatmap(
        lambda test: st.one_of(words, st.sampled_from(["X-Spam-Flag", "List-Id", "Delivered-To"])).map(
            lambda name: {"name": name, **test})))
    body = st.tuples(st.sampled_from(("body", "text")), st.one_of(texts, operator_test(("contains", "regex"))))
    size = st.tuples(st.sampled_from(("larger", "smaller")),
                     st.one_of(st.integers(-5, 10**12), st.sampled_from(["5M", "10K", "1 GB", "7X", ""])))
    age = st.tuples(st.sampled_from(("older_than", "newer_than")), st.sampled_from(["30d", "12h", "1w", "2y", "0d", "5m"]))
    day = st.tuples(st.sampled_from(("before", "since", "sent_before", "sent_since")),
                    st.sampled_from(["2025-01-31", "2025-02-30", "0000-00-00", "9999-12-31", "yesterday"]))
    flag = st.tuples(st.sampled_from((*SYSTEM_FLAGS, "has_attachment")), st.booleans())
    keyword = st.tuples(st.just("keyword"), one_or_many(st.sampled_from(["$Label", "\\Seen", "NonJunk", "a b", ""])))
    pairs = st.lists(st.one_of(address, text, header, body, size, age, day, flag, keyword), min_size=1, max_size=3)
    return pairs.map(dict)


def conditions() -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        leaf_conditions(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3).map(lambda items: {"all": items}),
            st.lists(inner, max_size=3).map(lambda items: {"any": items}),
            inner.map(lambda item: {"not": item}),
        ),
        max_leaves=8,
    )


def flag_names() -> st.SearchStrategy[Any]:
    return one_or_many(st.one_of(st.sampled_from(SYSTEM_FLAGS), st.sampled_from(["$Invoice", "\\Flagged", "bad flag"]), words))


def replies() -> st.SearchStrategy[dict[str, Any]]:
    source = st.one_of(st.fixed_dictionaries({"body": st.sampled_from(JINJA)}),
                       st.fixed_dictionaries({"template": st.sampled_from(["missing.j2", "../../etc/passwd", "x"])}))
    return source.flatmap(lambda base: st.fixed_dictionaries(
        {k: st.just(v) for k, v in base.items()},
        optional={"subject": st.sampled_from(JINJA), "from": st.sampled_from(["me@example.com", "nobody", "@@"]),
                  "once_per": st.sampled_from(["7d", "0h", "x"]), "save_to": folders,
                  "require_recipient": st.booleans()}))


def actions() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(["delete", "trash", "stop", "move", "flag", "explode"]),
        st.tuples(st.sampled_from(("move", "copy", "trash")), folders).map(lambda kv: dict([kv])),
        st.tuples(st.sampled_from(("flag", "unflag")), flag_names()).map(lambda kv: dict([kv])),
        replies().map(lambda reply: {"reply": reply}),
        st.sampled_from(["bob@example.com", "not-an-address", "a@b"]).map(lambda to: {"redirect": to}),
    )


def rules() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"name": names, "when": st.one_of(conditions(), st.sampled_from(["all", "some", {}])),
         "then": st.lists(actions(), min_size=1, max_size=4)},
        optional={"description": words, "folders": st.lists(folders, min_size=1, max_size=3),
                  "enabled": st.booleans()},
    )


def rule_documents() -> st.SearchStrategy[dict[str, Any]]:
    defaults = st.fixed_dictionaries({}, optional={
        "folders": st.lists(folders, min_size=1, max_size=2), "create_folders": st.booleans(), "trash_folder": folders})
    return st.fixed_dictionaries(
        {"version": st.sampled_from([1, 1, 1, 2, "1"]), "rules": st.lists(rules(), max_size=4)},
        optional={"defaults": defaults, "include": st.lists(st.sampled_from(["rules.yaml", "missing.yaml", "/dev/null", ""]),
                                                             max_size=2),
                  "account": words},
    )


# ---------------------------------------------------------------- spoiling a document's values


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a nested value (the root included) that a mutation can replace."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, prefix + (index,))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


def _nested(depth: int, kind: str) -> Any:
    value: Any = {"subject": "x"}
    for _ in range(depth):
        value = {"not": value} if kind == "not" else {"all": [value]} if kind == "all" else [value]
    return value


wrong_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=True, allow_infinity=True),
    st.just([]), st.just({}), st.lists(st.integers(), max_size=3), st.dictionaries(words, st.integers(), max_size=3),
    st.integers(10_000, 2_000_000).map(lambda n: "x" * n),  # huge strings, up to 2 MB of YAML
    st.tuples(st.integers(20, 150), st.sampled_from(["not", "all", "list"])).map(lambda args: _nested(*args)),
)


@st.composite
def spoiled_values(draw: st.DrawFn, document: dict[str, Any]) -> Any:
    """``document`` with one to three of its values replaced, or an unknown key added."""
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(document)))
        target: Any = document
        for step in path:
            target = target[step]
        if isinstance(target, dict) and draw(st.booleans()):
            document = _replace(document, path, {**target, draw(words) or "typo": draw(wrong_values)})
        else:
            document = _replace(document, path, draw(wrong_values))
    return document


# ---------------------------------------------------------------- spoiling a file's text

BAD_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82", b"\x80")
TEXT_INSERTS = (
    b"\t", b"\x00", b"\x1b[31m", b"\r", b"\xef\xbb\xbf", b"&anchor ", b"*anchor", b"<<: *anchor\n", b"!!python/object:os.system ",
    b"!custom ", b"\n---\n", b"\n...\n", b"? [1, 2]\n: x\n", b"{", b"[", b"'", b'"', b": ", b"- ", b"%YAML 1.1\n",
    b"\xe2\x80\xa8", b"\xc2\x85", b"99999999999999999999999999999999", b".nan", b"2025-01-01T00:00:00Z",
)
BILLION_LAUGHS = (
    b"version: 1\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + b"".join(b"x%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n" % ((i, i) + (i - 1,) * 9)
               for i in range(1, 10))
    + b"rules: []\n"
)


@st.composite
def spoiled_text(draw: st.DrawFn, text: bytes) -> bytes:
    """``text`` with bytes inserted, lines re-indented with tabs, or cut short."""
    how = draw(st.sampled_from(["insert", "insert", "tabs", "truncate", "crlf", "aliases", "deep-flow"]))
    if how == "tabs":
        return text.replace(b"\n  ", b"\n\t")
    if how == "truncate":
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if how == "crlf":
        return text.replace(b"\n", b"\r\n")
    if how == "aliases":
        return text.replace(b"rules:", b"common: &c {subject: x}\nrules:", 1).replace(b"when:", b"when: *c\n    old_when:", 1)
    if how == "deep-flow":
        depth = draw(st.integers(50, 5000))
        return text + b"deep: " + b"[" * depth + b"]" * depth + b"\n"
    inserted = draw(st.one_of(st.sampled_from(BAD_UTF8), st.sampled_from(TEXT_INSERTS), st.binary(min_size=1, max_size=8)))
    at = draw(st.integers(0, len(text)))
    return text[:at] + inserted + text[at:]


def dump(document: Any) -> bytes:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=10**9).encode("utf-8")


@st.composite
def hostile_rule_files(draw: st.DrawFn) -> bytes:
    """The bytes of a rule file: generated from the schema, then spoiled in value and/or text."""
    document: Any = draw(rule_documents())
    if draw(st.booleans()):
        document = draw(spoiled_values(document))
    text = dump(document)
    if draw(st.booleans()):
        text = draw(spoiled_text(text))
    return text
