"""Malformed mail never stops mailrules: `explain` answers, a run on a real server finishes,
and the well-formed messages next to the broken ones are still sorted.

A pattern that backtracks catastrophically (a regex with nested quantifiers, a glob with
many wildcards) is hostile input too: a run must end in bounded time, or the loader must
refuse the pattern with a located problem.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailrules.message import MessageView
from tests.robustness.harness import PASSWORD_ENV, Workspace, run_cli, workspace
from tests.robustness.hostile_corpus import hostile_messages, normal_message
from tests.robustness.mailbox_state import fetch_all
from tests.support.dovecot import Dovecot, User

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-11-20T10:00:00Z"
PER_MESSAGE_BUDGET_SECONDS = 10.0
RUN_BUDGET_SECONDS = 90.0
BACKTRACK_BUDGET_SECONDS = 10.0
NORMAL_COUNT = 10
BIG = 500 * 1024

RULES = """\
version: 1
rules:
  - name: reports
    when: {from: {address: reports@example.org}, subject: {matches: "routine report *"}}
    then: [{flag: seen}, {move: Reports}]
  - name: probe-headers
    when:
      any:
        - subject: {regex: "^never-[0-9]+$"}
        - header: {name: X-Long, contains: zzz}
        - list_id: {is: never.example}
        - to: {domain: never.example}
        - cc: {localpart: never}
        - reply_to: {display_name: Never}
        - from: {matches: "*never*"}
    then: [{flag: $HeaderProbe}]
  - name: probe-body
    when: {any: [{body: {regex: "secret-token-[0-9]{5}"}}, {text: never-in-text}, {has_attachment: true}]}
    then: [{flag: $BodyProbe}]
  - name: big
    when: {any: [{sent_before: 2000-01-01}, {larger: 500K}]}
    then: [{copy: Big}]
"""

# Patterns whose matching time explodes on the trap message below: nested quantifiers in a
# regex, and a Sieve glob with many wildcards (as a regex, ``.*a.*a…`` tries every split).
BACKTRACKING_TESTS = {
    "subject-regex": "{subject: {regex: '(a+)+$'}}",
    "body-regex": "{body: {regex: '(a|aa)+$'}}",
    "header-glob": "{header: {name: X-Long, matches: '*a*a*a*a*a*b'}}",
}
TRAP = "a" * 40 + "b"


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    return hostile_messages()


@pytest.fixture(scope="module")
def corpus_dir(corpus: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("hostile")
    for name, raw in corpus.items():
        (directory / f"{name}.eml").write_bytes(raw)
    (directory / "normal.eml").write_bytes(normal_message(1))
    return directory


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(RULES)
    return path


def test_the_corpus_holds_every_kind_of_damage(corpus: dict[str, bytes]) -> None:
    expected = {"truncated-base64", "boundary-never-closed", "nested-100", "huge-header-line", "nul-bytes",
                "invalid-charsets", "eight-bit-headers", "missing-headers", "garbage-64k", "empty",
                "terminal-escapes", "odd-header-lines"}
    assert expected <= set(corpus)
    assert max(len(raw) for raw in corpus.values()) >= 2**20


def read_everything(view: MessageView) -> None:
    """Touch every accessor the rules use."""
    for name in ("From", "To", "Cc", "Subject", "List-Id", "Sender", "X-Long", "Message-ID"):
        view.header_values(name)
        view.raw_header_values(name)
    for name in ("From", "To", "Cc", "Reply-To", "Sender"):
        view.addresses(name)
    view.body_text()
    view.has_attachment()
    view.sent_date()
    assert isinstance(view.warnings, list)
    assert view.size >= 0


def test_message_view_reads_every_hostile_message(corpus: dict[str, bytes]) -> None:
    slow: dict[str, float] = {}
    for name, raw in corpus.items():
        started = time.monotonic()
        read_everything(MessageView.from_bytes(raw, flags=("\\Seen", "$Label")))
        elapsed = time.monotonic() - started
        if elapsed > PER_MESSAGE_BUDGET_SECONDS:
            slow[name] = elapsed
    assert not slow, f"too slow: {slow}"


def explain(rules: Path, eml: Path) -> dict[str, object]:
    started = time.monotonic()
    result = run_cli(["explain", str(rules), str(eml), "--json", "--now", NOW])
    elapsed = time.monotonic() - started
    assert result.code == 0, f"{eml.name}: exit {result.code}\n{result.stderr[-2000:]}"
    assert elapsed < PER_MESSAGE_BUDGET_SECONDS, f"{eml.name}: explain took {elapsed:.1f} s"
    answer = json.loads(result.stdout)
    assert isinstance(answer["matched"], list)
    outcome = answer["outcome"]
    assert isinstance(outcome["folders"], list) and isinstance(outcome["flags"], list)
    return answer


def test_explain_reads_a_well_formed_message_as_the_control(rules_file: Path, corpus_dir: Path) -> None:
    answer = explain(rules_file, corpus_dir / "normal.eml")
    assert answer["matched"] == ["reports"]
    assert answer["outcome"]["folders"] == ["Reports"]  # type: ignore[index]
    assert answer["outcome"]["flags"] == ["\\Seen"]  # type: ignore[index]


def hostile_names() -> list[str]:
    return sorted(hostile_messages())


@pytest.mark.parametrize("name", hostile_names())
def test_explain_answers_for_every_hostile_message(rules_file: Path, corpus_dir: Path, name: str) -> None:
    answer = explain(rules_file, corpus_dir / f"{name}.eml")
    assert "reports" not in answer["matched"]  # type: ignore[operator]
    assert answer["outcome"]["folders"] in (["INBOX"], ["INBOX", "Big"], ["Big", "INBOX"])  # type: ignore[index]


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")  # all but tab and newline; \x9b is an 8-bit CSI


def control_characters(text: str) -> list[str]:
    return sorted({repr(char) for char in CONTROL.findall(text)})


@pytest.mark.parametrize("name", hostile_names())
def test_explain_never_passes_control_characters_to_the_terminal(rules_file: Path, corpus_dir: Path, name: str) -> None:
    """A Subject can carry escape sequences that retitle, clear or rewrite a terminal."""
    result = run_cli(["explain", str(rules_file), str(corpus_dir / f"{name}.eml"), "--now", NOW])
    assert result.code == 0, result.stderr[-2000:]
    assert not control_characters(result.output), f"{name}: {control_characters(result.output)}"


# ---------------------------------------------------------------- a real run on Dovecot


def server_sizes(dovecot: Dovecot, user: User, folder: str) -> Counter[int]:
    with dovecot.client(user) as imap:
        if not imap.folder_exists(folder):
            return Counter()
        imap.select_folder(folder, readonly=True)
        return Counter(data[b"RFC822.SIZE"] for data in fetch_all(imap, ["RFC822.SIZE"]).values())


def message_ids(dovecot: Dovecot, user: User, folder: str) -> dict[str, set[bytes]]:
    """Message-ID -> flags of every message in ``folder`` that has a Message-ID."""
    with dovecot.client(user) as imap:
        imap.select_folder(folder, readonly=True)
        found = fetch_all(imap, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    result = {}
    for data in found.values():
        header = data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode(errors="replace").strip()
        if header:
            result[header.split(":", 1)[1].strip()] = set(data[b"FLAGS"])
    return result


def test_a_real_run_sorts_normal_mail_next_to_hostile_mail(
        dovecot: Dovecot, fresh_user: User, corpus: dict[str, bytes], tmp_path: Path) -> None:
    for raw in corpus.values():
        dovecot.deliver(fresh_user, raw)
    for number in range(NORMAL_COUNT):
        dovecot.deliver(fresh_user, normal_message(number))
    before = server_sizes(dovecot, fresh_user, "INBOX")
    ws = workspace(tmp_path, RULES).point_at(dovecot.host, dovecot.port, fresh_user)

    started = time.monotonic()
    result = run_cli(ws.run_args("--now", NOW))
    elapsed = time.monotonic() - started

    assert result.code == 0, result.output[-3000:]
    assert elapsed < RUN_BUDGET_SECONDS
    reports = message_ids(dovecot, fresh_user, "Reports")
    assert sorted(reports) == sorted(f"<report-{n}@example.org>" for n in range(NORMAL_COUNT))
    assert all(b"\\Seen" in flags for flags in reports.values())
    inbox = server_sizes(dovecot, fresh_user, "INBOX")
    assert sum(inbox.values()) == len(corpus), "a hostile message left INBOX or vanished"
    assert inbox + server_sizes(dovecot, fresh_user, "Reports") == before
    expected_big = Counter({size: count for size, count in inbox.items() if size > BIG})
    assert server_sizes(dovecot, fresh_user, "Big") == expected_big


def one_rule_per_message(corpus: dict[str, bytes]) -> str:
    """A rule for each Message-ID, so the plan lists every message among its examples."""
    ids = sorted({match.group(1).decode() for raw in corpus.values()
                  for match in re.finditer(rb"(?im)^Message-ID: *(<[!-~]+>)", raw)})
    rules = "".join(f"  - name: m{number}\n    when: {{header: {{name: Message-ID, is: '{mid}'}}}}\n"
                    f"    then: [{{flag: $Noted}}]\n" for number, mid in enumerate(ids))
    return "version: 1\nrules:\n" + rules + "  - name: everything\n    when: all\n    then: [{flag: $All}]\n"


def test_the_plan_never_passes_control_characters_to_the_terminal(
        dovecot: Dovecot, fresh_user: User, corpus: dict[str, bytes], tmp_path: Path) -> None:
    for raw in corpus.values():
        dovecot.deliver(fresh_user, raw)
    ws = workspace(tmp_path, one_rule_per_message(corpus)).point_at(dovecot.host, dovecot.port, fresh_user)
    result = run_cli(ws.run_args("--now", NOW, command="plan"))
    assert result.code == 0, result.output[-3000:]
    assert "terminal-escapes" in result.output or "cleared" in result.output  # the dangerous one is listed
    assert not control_characters(result.output), control_characters(result.output)


# ---------------------------------------------------------------- catastrophic backtracking


def backtracking_message() -> bytes:
    return (f"From: a@example.net\r\nTo: u@example.com\r\nSubject: {TRAP}\r\nX-Long: {'a' * 3000}\r\n"
            f"Message-ID: <backtrack@hostile.example>\r\nDate: Thu, 19 Nov 2026 14:00:00 +0000\r\n\r\n{TRAP}\r\n"
            ).encode()


def backtracking_rules(test: str) -> str:
    return f"version: 1\nrules:\n  - name: trap\n    when: {BACKTRACKING_TESTS[test]}\n    then: [{{flag: flagged}}]\n"


def run_bounded(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str] | None:
    """``mailrules ARGS`` in a child process; None when it is still running after the budget."""
    try:
        return subprocess.run([sys.executable, "-m", "mailrules", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=BACKTRACK_BUDGET_SECONDS, env=env)
    except subprocess.TimeoutExpired:
        return None


@pytest.fixture(params=sorted(BACKTRACKING_TESTS))
def backtracking_files(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    ws = workspace(tmp_path, backtracking_rules(request.param))
    (tmp_path / "evil.eml").write_bytes(backtracking_message())
    yield ws


def refused_with_location(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 2 and "rules.yaml:" in result.stderr


def test_a_backtracking_pattern_cannot_hang_explain(backtracking_files: Workspace) -> None:
    eml = backtracking_files.root / "evil.eml"
    result = run_bounded(["explain", str(backtracking_files.rules), str(eml), "--json", "--now", NOW])
    assert result is not None, (
        f"explain still running after {BACKTRACK_BUDGET_SECONDS:.0f} s:\n{backtracking_files.rules.read_text()}")
    assert result.returncode == 0 or refused_with_location(result), result.stderr


def test_a_backtracking_pattern_cannot_hang_a_run(dovecot: Dovecot, fresh_user: User,
                                                   backtracking_files: Workspace) -> None:
    dovecot.deliver(fresh_user, backtracking_message())
    ws = backtracking_files.point_at(dovecot.host, dovecot.port, fresh_user)
    result = run_bounded(ws.run_args("--now", NOW), env={**os.environ, PASSWORD_ENV: fresh_user.password})
    assert result is not None, (
        f"mailrules run still running after {BACKTRACK_BUDGET_SECONDS:.0f} s:\n{ws.rules.read_text()}")
    assert "Traceback" not in result.stderr
    assert result.returncode in (0, 1) or refused_with_location(result), result.stderr
