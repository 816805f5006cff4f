"""``mailrules test``: run rule test files offline and report like pytest.

Exit 0 when every case passes, 1 when some case fails, 2 when a test or rule file is
invalid (those problems are printed as ``file:line:col`` and no case of that file runs).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from mailrules.errors import MailrulesError, Problem, RuleFileError, UsageError
from mailrules.explain import Explanation, explain_message
from mailrules.model import RuleSet, canonical_flag
from mailrules.testfile import TestCase, TestSuite


@dataclass(frozen=True, slots=True)
class CaseResult:
    suite: str
    case: TestCase
    mismatches: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.mismatches


def check_case(ruleset: RuleSet, case: TestCase) -> tuple[str, ...]:
    """Every way the case's actual outcome differs from what it expects (empty when it passes)."""
    result = explain_message(ruleset, case.message_bytes(), folder=case.folder, flags=list(case.flags),
                             now=case.now or datetime.now(timezone.utc))
    return tuple(_mismatches(case, result))


def _mismatches(case: TestCase, result: Explanation) -> list[str]:
    expect, outcome = case.expect, result.outcome
    found: list[str] = []
    if expect.rules is not None and list(expect.rules) != list(outcome.matched):
        found.append(_differs("rules", list(expect.rules), list(outcome.matched)))
    if expect.folders is not None and sorted(expect.folders) != sorted(outcome.final_folders):
        found.append(_differs("folders", list(expect.folders), list(outcome.final_folders)))
    if expect.flags is not None:
        wanted = sorted({canonical_flag(flag) for flag in expect.flags}, key=str.lower)
        actual = sorted(outcome.final_flags, key=str.lower)
        if [flag.lower() for flag in wanted] != [flag.lower() for flag in actual]:
            found.append(_differs("flags", wanted, actual))
    if expect.replies is not None and expect.replies != result.replies_sent:
        reasons = [f"{s.rule}: {s.skip_reason}" for s in result.sends if s.kind == "reply" and s.skip_reason]
        note = f" (skipped: {'; '.join(reasons)})" if reasons else ""
        found.append(_differs("replies", expect.replies, result.replies_sent) + note)
    return found


def _differs(what: str, expected: object, actual: object) -> str:
    return f"{what}: expected {expected}, got {actual}"


def run_suite(suite: TestSuite) -> list[CaseResult]:
    from mailrules.loader import load_ruleset

    ruleset = load_ruleset(suite.rules_path).ruleset
    results = []
    for case in suite.cases:
        try:
            mismatches = check_case(ruleset, case)
        except MailrulesError as exc:
            mismatches = (f"error: {exc}",)
        results.append(CaseResult(suite.path, case, mismatches))
    return results


def run_test_files(paths: Sequence[str], out: TextIO, *, as_json: bool = False) -> int:
    from mailrules.testfile import load_test_suite

    results: list[CaseResult] = []
    problems: list[Problem] = []
    invalid = 0
    for path in test_files(paths):
        try:
            results += run_suite(load_test_suite(path))
        except RuleFileError as exc:
            invalid += 1
            problems += exc.problems
            if not as_json:
                print("\n".join(str(problem) for problem in exc.problems), file=out)
    if as_json:
        _report_json(results, problems, out)
    else:
        _report(results, out)
    if invalid:
        return 2
    return 0 if all(result.passed for result in results) else 1


def test_files(paths: Sequence[str]) -> list[str]:
    """The test files named, with a folder standing for every ``*.test.yaml`` under it (hidden ones left out)."""
    files: list[str] = []
    for path in paths:
        if not os.path.isdir(path):
            files.append(path)
            continue
        found = sorted(str(file) for file in Path(path).rglob("*.test.y*ml")
                       if file.suffix in (".yaml", ".yml") and not _hidden(file.relative_to(path)))
        if not found:
            raise UsageError(f"{path}: no rule test files (*.test.yaml) in this folder")
        files += found
    return files


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _report_json(results: list[CaseResult], problems: list[Problem], out: TextIO) -> None:
    """``test --json``: ``passed``, ``failed``, ``cases`` and ``problems`` (docs/operations.md)."""
    import json

    from mailrules.render import problem_json

    cases = [{"file": result.suite, "name": result.case.name, "loc": str(result.case.loc), "passed": result.passed,
              "mismatches": list(result.mismatches)} for result in results]
    failed = sum(not result.passed for result in results)
    print(json.dumps({"passed": len(results) - failed, "failed": failed, "cases": cases,
                      "problems": [problem_json(problem) for problem in problems]}, indent=2, ensure_ascii=False),
          file=out)


def _report(results: list[CaseResult], out: TextIO) -> None:
    for result in results:
        status = "PASSED" if result.passed else "FAILED"
        print(f"{result.suite}::{result.case.name} {status}", file=out)
    failures = [result for result in results if not result.passed]
    if failures:
        print("\n=== failures ===", file=out)
    for result in failures:
        print(f"{result.case.loc}: {result.case.name}", file=out)
        for mismatch in result.mismatches:
            print(f"    {mismatch}", file=out)
    passed = len(results) - len(failures)
    print(f"\n{passed} passed, {len(failures)} failed", file=out)
