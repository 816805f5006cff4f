"""Rule files written carelessly or with hostile intent.

Whatever the bytes, loading ends in a rule set or in a RuleFileError whose every problem
names file, line and column, in bounded time; ``mailrules validate`` prints those
problems, never a traceback.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from mailrules.errors import RuleFileError
from mailrules.loader import LoadResult, load_ruleset
from tests.robustness.harness import run_cli
from tests.robustness.rule_strategies import BILLION_LAUGHS, hostile_rule_files

LOAD_BUDGET_SECONDS = 5.0
PROBLEM_LINE = re.compile(r"^\S.*:\d+:\d+: (error|warning): \S")

VALID = b"""\
version: 1
rules:
  - name: github
    when: {from: notifications@github.com}
    then: [{move: Notifications/GitHub}]
"""

CLASSICS: dict[str, bytes] = {
    "billion laughs": BILLION_LAUGHS,
    "alias for a condition": b"version: 1\nc: &c {subject: x}\nrules:\n  - name: a\n    when: *c\n    then: [delete]\n",
    "merge key": b"version: 1\nrules:\n  - &r {name: a, when: {subject: x}, then: [delete]}\n  - <<: *r\n    name: b\n",
    "python tag": b"version: 1\nrules: !!python/object/apply:os.system ['true']\n",
    "custom tag": b"version: 1\nrules:\n  - !rule {name: a}\n",
    "flow nesting 10,000 deep": b"version: 1\nrules: " + b"[" * 10_000 + b"]" * 10_000 + b"\n",
    "block nesting 500 deep": b"version: 1\nrules:\n" + b"".join(b"  " * i + b"- \n" for i in range(500)),
    "condition nesting 300 deep": b"version: 1\nrules:\n  - name: a\n    when: " + b"{not: " * 300 + b"{subject: x}" + b"}" * 300
    + b"\n    then: [delete]\n",
    "file over the size limit": b"version: 1\nrules: []\n# " + b"x" * (6 * 2**20) + b"\n",
    "one 4 MB string": b"version: 1\nrules:\n  - name: a\n    when: {subject: '" + b"y" * (4 * 2**20) + b"'}\n    then: [delete]\n",
    "invalid UTF-8 at the start": b"\xff\xfeversion: 1\n",
    "invalid UTF-8 in a value": VALID.replace(b"github.com", b"github\xc3\x28.com"),
    "UTF-16 with BOM": "version: 1\nrules: []\n".encode("utf-16"),
    "NUL byte": VALID.replace(b"github", b"git\x00hub", 1),
    "escape sequence": VALID.replace(b"github", b"git\x1b[2Jhub", 1),
    "tab indentation": VALID.replace(b"\n  - ", b"\n\t- ").replace(b"\n    ", b"\n\t\t"),
    "tabs and spaces": VALID.replace(b"\n    then", b"\n  \t  then"),
    "key that is a list": b"version: 1\n? [a, b]\n: c\nrules: []\n",
    "duplicate keys": VALID + b"rules: []\n",
    "two documents": VALID + b"---\n" + VALID,
    "empty file": b"",
    "only a comment": b"# nothing here\n",
    "top-level list": b"- version: 1\n",
    "top-level scalar": b"just words\n",
    "huge integer size": VALID.replace(b"{from: notifications@github.com}", b"{larger: " + b"9" * 5000 + b"}"),
    "NaN size": VALID.replace(b"{from: notifications@github.com}", b"{larger: .nan}"),
    "timestamp version": b"version: 2025-01-01\nrules: []\n",
    "unclosed quote": b"version: 1\nrules:\n  - name: 'a\n",
    "unclosed flow": b"version: 1\nrules: [{name: a\n",
    "CR-only line ends": VALID.replace(b"\n", b"\r"),
    "line separator characters": VALID.replace(b"\n", "\u2028".encode()),
    "self include": b"version: 1\ninclude: [rules.yaml]\nrules: []\n",
    "include of a directory": b"version: 1\ninclude: [.]\nrules: []\n",
    "include of /dev/zero": b"version: 1\ninclude: [/dev/zero]\nrules: []\n",
    "regex that doesn't compile": VALID.replace(b"{from: notifications@github.com}", b"{subject: {regex: '(unclosed'}}"),
    "template that doesn't parse": VALID.replace(b"[{move: Notifications/GitHub}]", b"[{reply: {body: '{{ unclosed'}}]"),
    "template escaping the sandbox": VALID.replace(
        b"[{move: Notifications/GitHub}]", b"[{reply: {template: ../../../../etc/shadow}}]"),
}


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hostile-rules-") as directory:
        yield Path(directory)


def load_with_budget(path: Path) -> LoadResult | RuleFileError:
    started = time.monotonic()
    try:
        outcome: LoadResult | RuleFileError = load_ruleset(path)
    except RuleFileError as exc:
        outcome = exc
    elapsed = time.monotonic() - started
    assert elapsed < LOAD_BUDGET_SECONDS, f"loading took {elapsed:.1f} s"
    return outcome


def assert_located(outcome: LoadResult | RuleFileError) -> None:
    problems = outcome.problems if isinstance(outcome, RuleFileError) else outcome.warnings
    if isinstance(outcome, RuleFileError):
        assert problems, "a RuleFileError must say what is wrong"
    for problem in problems:
        assert problem.loc.file and problem.loc.line >= 1 and problem.loc.col >= 1, f"unlocated: {problem}"
        assert problem.message.strip() and "Traceback" not in problem.message


@pytest.mark.parametrize("name", sorted(CLASSICS))
def test_classic_hostile_rule_files_end_in_located_problems(scratch: Path, name: str) -> None:
    path = scratch / "classic" / "rules.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(CLASSICS[name])
    assert_located(load_with_budget(path))


@pytest.mark.parametrize("name", ["billion laughs", "alias for a condition", "merge key", "python tag",
                                  "flow nesting 10,000 deep", "condition nesting 300 deep", "file over the size limit",
                                  "invalid UTF-8 in a value", "tab indentation", "two documents", "self include"])
def test_dangerous_constructs_are_refused(scratch: Path, name: str) -> None:
    path = scratch / "refused" / "rules.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(CLASSICS[name])
    outcome = load_with_budget(path)
    assert isinstance(outcome, RuleFileError), f"{name} was accepted"


@pytest.mark.parametrize("name", sorted(CLASSICS))
def test_validate_prints_problems_not_tracebacks(scratch: Path, name: str) -> None:
    path = scratch / "cli" / "rules.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(CLASSICS[name])
    result = run_cli(["validate", str(path)])
    assert result.code in (0, 2), result.output
    assert "Traceback" not in result.output
    problem_lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.code == 2:
        assert problem_lines
    assert all(PROBLEM_LINE.match(line) for line in problem_lines), result.stderr[:2000]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=hostile_rule_files())
def test_generated_and_spoiled_rule_files_end_in_located_problems(scratch: Path, text: bytes) -> None:
    path = scratch / "generated" / "rules.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(text)
    assert_located(load_with_budget(path))
