"""The account's subaddress separator reaches the planner: `detail:` splits where the account says."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from mailrules.backends.maildir import MaildirMailbox
from mailrules.model import RuleSet
from mailrules.parse import parse_rule_file
from mailrules.planner import PlanOptions, build_plan
from mailrules.yamlsrc import parse_yaml

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
RULES = "version: 1\nrules:\n  - name: github\n    when: {to: {detail: github}}\n    then: [{flag: $GitHub}]\n"


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (tmp_path / sub).mkdir()
    message = b"From: n@github.com\r\nTo: alice-github@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
    (tmp_path / "cur" / "1700000000.1.host:2,").write_bytes(message)
    return tmp_path


@pytest.mark.parametrize(("separator", "matches"), [("+", 0), ("-", 1), ("+-", 1)])
def test_detail_splits_at_the_accounts_separator(maildir: Path, separator: str, matches: int) -> None:
    ruleset = RuleSet(parse_rule_file(parse_yaml(RULES, "rules.yaml")).rules)
    plan = build_plan(ruleset, MaildirMailbox(maildir), PlanOptions(now=NOW, subaddress_separator=separator))
    assert sum(summary.matched for summary in plan.rules if summary.rule == "github") == matches
