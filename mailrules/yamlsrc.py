"""Reading YAML files into plain values while remembering where each value was written.

``yaml.safe_load`` forgets positions, so we compose the node tree ourselves and convert
it, recording the 1-based line and column of every value and of every mapping key.
The result is JSON-like (dicts with string keys, lists, str, int, float, bool, None),
which is what the JSON Schema validation downstream expects.

Inputs are untrusted text from a team's repository, so this module also refuses what
could hurt or confuse: aliases (the "billion laughs" expansion and merge-key surprises),
duplicate keys (the later one would silently win), custom tags, other encodings than
UTF-8, very large files and very deep nesting.  Every refusal is a ``Problem`` with a
location; nothing here lets a ``yaml`` exception or a ``RecursionError`` escape.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mailrules.errors import Loc, Problem, RuleFileError

MAX_BYTES = 5 * 1024 * 1024
MAX_DEPTH = 100

Path = tuple[str | int, ...]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null")}


@dataclass(frozen=True, slots=True)
class LocIndex:
    """Where each value (``values``) and each mapping key (``keys``, by the value's path) was written."""

    file: str
    values: Mapping[Path, Loc] = field(default_factory=dict)
    keys: Mapping[Path, Loc] = field(default_factory=dict)

    def at(self, path: Path | list[str | int]) -> Loc:
        """The location of the value at ``path``, or of its nearest recorded ancestor."""
        path = tuple(path)
        while path and path not in self.values:
            path = path[:-1]
        return self.values.get(path, Loc(self.file, 1, 1))

    def key(self, path: Path | list[str | int]) -> Loc:
        """The location of the key that introduces ``path`` (falls back to the value's)."""
        return self.keys.get(tuple(path)) or self.at(path)


class YamlDocument(NamedTuple):
    data: Any
    locs: LocIndex


class _Refusal(Exception):
    def __init__(self, mark: yaml.Mark, message: str):
        super().__init__(message)
        self.mark = mark
        self.message = message


class _GuardedLoader(yaml.SafeLoader):
    """SafeLoader's composer with aliases refused and nesting depth bounded before recursing."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: object) -> Node:
        if self.check_event(yaml.AliasEvent):
            raise _Refusal(
                self.peek_event().start_mark,
                "YAML aliases (*name) are not supported in mailrules files; write the value out",
            )
        if self._depth >= MAX_DEPTH:
            raise _Refusal(self.peek_event().start_mark, f"nested deeper than {MAX_DEPTH} levels")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_yaml(path: str | os.PathLike[str], display: str | None = None) -> YamlDocument:
    """Read and convert one YAML file whose top level must be a mapping.

    ``display`` is the file name used in locations (default: ``path`` as given).
    Raises ``OSError`` when the file cannot be read (the caller knows whether that is a
    usage error or a problem at an include entry) and ``RuleFileError`` for its content.
    """
    name = display if display is not None else os.fspath(path)
    with open(path, "rb") as stream:
        raw = stream.read(MAX_BYTES + 1)
    return parse_yaml(raw, name)


def parse_yaml(raw: bytes | str, file: str) -> YamlDocument:
    """Convert YAML text (bytes must be UTF-8) to a ``YamlDocument``; raises ``RuleFileError``.

    >>> doc = parse_yaml(b"rules:\\n  - name: a\\n", "r.yaml")
    >>> doc.data, str(doc.locs.at(("rules", 0, "name"))), str(doc.locs.key(("rules", 0, "name")))
    ({'rules': [{'name': 'a'}]}, 'r.yaml:2:11', 'r.yaml:2:5')
    """
    text = raw if isinstance(raw, str) else _decode(raw, file)
    if len(text) > MAX_BYTES:
        raise RuleFileError([Problem(Loc(file, 1, 1), f"file is larger than {MAX_BYTES // 2**20} MB")])
    root = _compose(text.removeprefix("\ufeff"), file)
    if root is None:
        raise RuleFileError([Problem(Loc(file, 1, 1), "file is empty; expected a mapping of keys and values")])
    if not isinstance(root, MappingNode):
        raise RuleFileError(
            [Problem(_loc(file, root.start_mark), f"the top level must be a mapping (key: value), not {_kind(root)}")]
        )
    converter = _Converter(file)
    data = converter.convert(root, ())
    if converter.problems:
        raise RuleFileError(converter.problems)
    return YamlDocument(data, LocIndex(file, converter.values, converter.keys))


def _decode(raw: bytes, file: str) -> str:
    if len(raw) > MAX_BYTES:
        raise RuleFileError([Problem(Loc(file, 1, 1), f"file is larger than {MAX_BYTES // 2**20} MB")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        loc = _offset_loc(file, raw, exc.start)
        raise RuleFileError([Problem(loc, "file is not valid UTF-8 text; save it as UTF-8")]) from None


def _offset_loc(file: str, text: bytes | str, offset: int) -> Loc:
    newline = b"\n" if isinstance(text, bytes) else "\n"
    line_start = text.rfind(newline, 0, offset) + 1  # type: ignore[arg-type]
    return Loc(file, text.count(newline, 0, offset) + 1, offset - line_start + 1)  # type: ignore[arg-type]


def _compose(text: str, file: str) -> Node | None:
    try:
        loader = _GuardedLoader(text)
    except yaml.reader.ReaderError as exc:
        raise RuleFileError([_reader_problem(file, text, exc)]) from None
    try:
        return loader.get_single_node()
    except _Refusal as exc:
        raise RuleFileError([Problem(_loc(file, exc.mark), exc.message)]) from None
    except yaml.MarkedYAMLError as exc:
        raise RuleFileError([_syntax_problem(file, exc)]) from None
    except yaml.reader.ReaderError as exc:
        raise RuleFileError([_reader_problem(file, text, exc)]) from None
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise RuleFileError([Problem(Loc(file, 1, 1), f"cannot read YAML: {exc}")]) from None
    finally:
        loader.dispose()


def _reader_problem(file: str, text: str, exc: yaml.reader.ReaderError) -> Problem:
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    return Problem(_offset_loc(file, text, exc.position), f"character U+{code:04X} is not allowed in YAML text")


def _syntax_problem(file: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    loc = _loc(file, mark) if mark is not None else Loc(file, 1, 1)
    problem = exc.problem or exc.context or "invalid YAML"
    if "'\\t'" in problem:
        return Problem(loc, "YAML syntax error: tab character; YAML indentation must use spaces")
    if exc.context == "expected a single document in the stream":
        return Problem(loc, "a second YAML document starts here; the file must hold exactly one")
    context = ""
    if exc.context and mark is not None and exc.context_mark is not None and exc.context_mark.line != mark.line:
        context = f" ({exc.context} at line {exc.context_mark.line + 1})"
    return Problem(loc, f"YAML syntax error: {problem}{context}")


def _loc(file: str, mark: yaml.Mark) -> Loc:
    return Loc(file, mark.line + 1, mark.column + 1)


def _kind(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    return f"a single value ({node.value!r})"


def _tag(node: Node) -> str:
    return node.tag.replace("tag:yaml.org,2002:", "!!")


class _Converter:
    """Node tree -> plain values, collecting locations and every problem on the way."""

    def __init__(self, file: str):
        self.file = file
        self.values: dict[Path, Loc] = {}
        self.keys: dict[Path, Loc] = {}
        self.problems: list[Problem] = []
        self._scalars = yaml.SafeLoader("")

    def convert(self, node: Node, path: Path) -> Any:
        self.values[path] = _loc(self.file, node.start_mark)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            self._expect_tag(node, _SEQ_TAG)
            return [self.convert(item, path + (index,)) for index, item in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        self._expect_tag(node, _MAP_TAG)
        result: dict[str, Any] = {}
        first_seen: dict[str, Loc] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node)
            if key is None:
                continue
            key_loc = _loc(self.file, key_node.start_mark)
            if key in first_seen:
                self._problem(key_loc, f"duplicate key {key!r} (first at line {first_seen[key].line})")
                continue
            first_seen[key] = key_loc
            self.keys[path + (key,)] = key_loc
            result[key] = self.convert(value_node, path + (key,))
        return result

    def _key(self, node: Node) -> str | None:
        # Keys are names: their source text is used, so `on:` or `1:` stay the words written.
        if isinstance(node, ScalarNode):
            return self._text(str(node.value), node)
        self._problem(_loc(self.file, node.start_mark), "a mapping key must be a plain word, not a list or mapping")
        return None

    def _scalar(self, node: ScalarNode) -> Any:
        if node.tag == _TIMESTAMP_TAG:
            # Kept as written: the rule language parses days and times itself, with its own messages.
            return str(node.value)
        if node.tag not in _PLAIN_TAGS:
            self._problem(_loc(self.file, node.start_mark), f"unsupported YAML tag {_tag(node)}")
            return None
        try:
            value = self._scalars.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            self._problem(_loc(self.file, node.start_mark), f"invalid value {node.value!r}: {exc}")
            return None
        return self._text(value, node) if isinstance(value, str) else value

    def _text(self, text: str, node: Node) -> str | None:
        # PyYAML decodes "\ud83d\ude00" escapes one half at a time; join the halves, refuse lone ones.
        if not _SURROGATE.search(text):
            return text
        try:
            return text.encode("utf-16", "surrogatepass").decode("utf-16")
        except UnicodeDecodeError:
            self._problem(_loc(self.file, node.start_mark), "a \\u escape names half a character (a lone surrogate)")
            return None

    def _expect_tag(self, node: Node, tag: str) -> None:
        if node.tag != tag:
            self._problem(_loc(self.file, node.start_mark), f"unsupported YAML tag {_tag(node)}")

    def _problem(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(loc, message))
