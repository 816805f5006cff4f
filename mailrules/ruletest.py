"""``mailrules test``: run rule test files offline and report like pytest.

Exit 0 when every case passes, 1 when some case fails, 2 when a test or rule file is
invalid (those problems are printed as ``file:line:col`` and no case of that file runs).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from mailrules.errors import MailrulesError, Problem, RuleFileError, UsageError
from mailrules.explain import Explanation, explain_message
from mailrules.model import RuleSet, canonical_flag
from mailrules.testfile import ExpectedReply, TestCase, TestSuite


@dataclass(frozen=True, slots=True)
class CaseResult:
    suite: str
    case: TestCase
    mismatches: tuple[str, ...]
    errored: bool = False  # the case could not run (e.g. its message file is unreadable)
    seconds: float = 0.0

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
    if expect.redirects is not None:
        wanted = sorted(address.casefold() for address in expect.redirects)
        if wanted != sorted(address.casefold() for address in result.redirects_sent):
            found.append(_differs("redirects", list(expect.redirects), result.redirects_sent) + _skipped(result, "redirect"))
    if expect.reply is not None:
        found += _reply_mismatches(expect.reply, result)
    return found


def _skipped(result: Explanation, kind: str) -> str:
    reasons = [f"{s.rule}: {s.skip_reason}" for s in result.sends if s.kind == kind and s.skip_reason]
    return f" (skipped: {'; '.join(reasons)})" if reasons else ""


def _reply_mismatches(expected: Sequence[ExpectedReply], result: Explanation) -> list[str]:
    """Each expected reply against the sent reply in the same place (rule order)."""
    from mailrules.reply import envelope_sender

    sent = [send for send in result.sends if send.kind == "reply" and send.skip_reason is None]
    if len(sent) != len(expected):
        return [f"reply: expected {len(expected)} sent, got {len(sent)}" + _skipped(result, "reply")]
    recipient = envelope_sender(result.message) or ""
    found: list[str] = []
    for number, (want, send) in enumerate(zip(expected, sent), start=1):
        which = f"reply {number} (rule {send.rule})" if len(sent) > 1 else f"reply (rule {send.rule})"
        if want.to is not None and want.to.casefold() != recipient.casefold():
            found.append(f"{which} to: expected {want.to!r}, got {recipient!r}")
        if want.subject is not None and want.subject != send.subject:
            found.append(f"{which} subject: expected {want.subject!r}, got {send.subject!r}")
        for text in want.body_contains:
            if text not in send.body:
                found.append(f"{which} body: expected it to contain {text!r}; it is {_preview(send.body)!r}")
    return found


def _preview(body: str, limit: int = 200) -> str:
    return body if len(body) <= limit else body[:limit] + "…"


def unknown_rule_problems(suite: TestSuite, ruleset: RuleSet) -> list[Problem]:
    """A name in ``expect: rules`` that no rule has: a typo that would make the case fail for the wrong reason."""
    import difflib

    names = [rule.name for rule in ruleset.rules]
    problems = []
    for case in suite.cases:
        locs = case.expect.rule_locs or (case.loc,) * len(case.expect.rules or ())
        for name, loc in zip(case.expect.rules or (), locs):
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(Problem(loc, f"case {case.name!r}: no rule named {name!r} in {suite.rules_path}{hint}"))
    return problems


def _differs(what: str, expected: object, actual: object) -> str:
    return f"{what}: expected {expected}, got {actual}"


def run_suite(suite: TestSuite) -> list[CaseResult]:
    from mailrules.loader import load_ruleset

    ruleset = load_ruleset(suite.rules_path).ruleset
    unknown = unknown_rule_problems(suite, ruleset)
    if unknown:
        raise RuleFileError(unknown)
    results = []
    for case in suite.cases:
        started = time.monotonic()
        try:
            mismatches, errored = check_case(ruleset, case), False
        except MailrulesError as exc:
            mismatches, errored = (f"error: {exc}",), True
        results.append(CaseResult(suite.path, case, mismatches, errored, time.monotonic() - started))
    return results


def run_test_files(paths: Sequence[str], out: TextIO, *, as_json: bool = False, junit: str | None = None) -> int:
    from mailrules.testfile import load_test_suite

    results: list[CaseResult] = []
    problems: list[Problem] = []
    invalid: dict[str, list[Problem]] = {}
    for path in test_files(paths):
        try:
            results += run_suite(load_test_suite(path))
        except RuleFileError as exc:
            invalid[path] = list(exc.problems)
            problems += exc.problems
            if not as_json:
                print("\n".join(str(problem) for problem in exc.problems), file=out)
    if junit is not None:
        write_junit(junit, results, invalid)
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


def write_junit(path: str, results: Sequence[CaseResult], invalid: dict[str, list[Problem]]) -> None:
    """JUnit XML, as CI dashboards read it: a testsuite per test file, a testcase per case.

    A failed expectation is a ``<failure>``; a case that could not run, or a test file
    whose problems kept every case from running, is an ``<error>``.
    """
    from xml.etree import ElementTree as ET

    root = ET.Element("testsuites", name="mailrules test")
    by_file: dict[str, list[CaseResult]] = {}
    for result in results:
        by_file.setdefault(result.suite, []).append(result)
    for file, cases in by_file.items():
        suite = _junit_suite(root, file, len(cases), sum(r.seconds for r in cases))
        for result in cases:
            _junit_case(suite, result)
    for file, problems in invalid.items():
        suite = _junit_suite(root, file, 1, 0.0)
        case = ET.SubElement(suite, "testcase", classname=_junit_class(file), name="(test file)", file=file)
        ET.SubElement(case, "error", message=str(problems[0]) if problems else "invalid",
                      type="invalid").text = "\n".join(str(problem) for problem in problems)
    _junit_totals(root)
    ET.indent(root)
    try:
        ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    except OSError as exc:
        raise UsageError(f"--junit {path}: cannot write: {exc.strerror or exc}") from None


def _junit_suite(root, file: str, tests: int, seconds: float):  # type: ignore[no-untyped-def]
    from xml.etree import ElementTree as ET

    return ET.SubElement(root, "testsuite", name=file, tests=str(tests), time=f"{seconds:.3f}")


def _junit_class(file: str) -> str:
    # Dashboards group by the dotted class name: the test file without its suffix.
    name = os.path.basename(file)
    for suffix in (".test.yaml", ".test.yml", ".yaml", ".yml"):
        if name.endswith(suffix):
            return os.path.join(os.path.dirname(file), name[: -len(suffix)]).replace(os.sep, ".").lstrip(".")
    return name


def _junit_case(suite, result: CaseResult) -> None:  # type: ignore[no-untyped-def]
    from xml.etree import ElementTree as ET

    case = ET.SubElement(suite, "testcase", classname=_junit_class(result.suite), name=result.case.name,
                         file=result.suite, line=str(result.case.loc.line), time=f"{result.seconds:.3f}")
    if result.passed:
        return
    kind = "error" if result.errored else "failure"
    ET.SubElement(case, kind, message=result.mismatches[0], type=kind).text = "\n".join(
        [f"{result.case.loc}: {result.case.name}", *result.mismatches])


def _junit_totals(root) -> None:  # type: ignore[no-untyped-def]
    counts = {"tests": 0, "failures": 0, "errors": 0}
    for suite in root:
        failures = len(suite.findall("testcase/failure"))
        errors = len(suite.findall("testcase/error"))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        counts["tests"] += int(suite.get("tests"))
        counts["failures"] += failures
        counts["errors"] += errors
    for key, value in counts.items():
        root.set(key, str(value))


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
