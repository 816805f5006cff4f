"""Every condition and action of the language is handled by every target, or marked unsupported there.

A new member of ``model.Condition`` or ``model.Action`` fails here until it has a sample
below, and then until each target (matcher, its explanation, SEARCH pushdown, fetch needs,
the describer, Sieve; for actions the evaluator and Sieve) does something with it: a
gap must be an explicit answer (a local-only search, a Sieve "unsupported"), never a
``TypeError`` from a ``match`` that fell through or a silently empty result.
"""

from __future__ import annotations

import typing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailrules import model
from mailrules.backends.base import FetchNeeds
from mailrules.engine import evaluate_message
from mailrules.loader import load_ruleset
from mailrules.match import EvalContext, explain, matches
from mailrules.message import MessageView
from mailrules.parse import parse_condition
from mailrules.search import SearchQuery, describe, fetch_needs, to_search
from mailrules.sieve import SieveUnsupported, sieve_test, to_sieve

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)

# One rule-file sample per condition type (a type may have several forms; one is enough here).
CONDITIONS: dict[str, Any] = {
    "HeaderTest": {"subject": {"contains": "invoice"}},
    "AddressTest": {"from": {"domain": "example.com"}},
    "HeaderExists": {"header": {"name": "List-Unsubscribe", "exists": True}},
    "BodyTest": {"body": {"contains": "unsubscribe"}},
    "SizeTest": {"larger": "10K"},
    "AgeTest": {"older_than": "30d"},
    "DateTest": {"sent_before": "2026-01-01"},
    "FlagTest": {"seen": False},
    "AttachmentTest": {"has_attachment": True},
    "CountTest": {"count": {"header": "Received", "gt": 10}},
    "DatePartTest": {"sent": {"weekday": ["sat", "sun"], "hour": {"ge": 18}}},
    "AttachmentPartTest": {"attachment": {"type": "application/pdf", "filename": {"matches": "*.pdf"}}},
    "MimeHeaderTest": {"mime_header": {"name": "Content-Type", "part": "any", "contains": "pdf"}},
    "All": {"all": [{"seen": True}, {"subject": {"contains": "x"}}]},
    "Any": {"any": [{"seen": True}, {"subject": {"contains": "x"}}]},
    "Not": {"not": {"subject": {"contains": "x"}}},
}

# One action sample per action type, as a rule file writes it.
ACTIONS: dict[str, Any] = {
    "Move": {"move": "Archive"},
    "Copy": {"copy": "Archive"},
    "Trash": "trash",
    "Delete": "delete",
    "AddFlags": {"flag": "flagged"},
    "RemoveFlags": {"unflag": "seen"},
    "Reply": {"reply": {"body": "Thanks"}},
    "Redirect": {"redirect": "desk@example.org"},
    "Stop": "stop",
}

RAW = (b"From: Ann <ann@example.com>\r\nTo: me@example.org\r\nSubject: invoice 12\r\n"
       b"Date: Thu, 19 Nov 2025 10:00:00 +0000\r\nMessage-ID: <m1@example.com>\r\n"
       b"List-Unsubscribe: <mailto:u@example.com>\r\n\r\nTo unsubscribe, reply.\r\n")
FLAGS = ("\\Seen",)
MESSAGE = MessageView.from_bytes(RAW, flags=FLAGS, internaldate=NOW)


def fetched(needs: FetchNeeds) -> MessageView:
    """The message as a backend returns it for ``needs``: only what was asked for."""
    head = RAW.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    wanted = [line for line in lines if line.split(b":", 1)[0].decode().lower() in needs.headers]
    header = head if needs.all_headers else b"\r\n".join(wanted)
    return MessageView.from_parts(header=header + b"\r\n\r\n", size=MESSAGE.size, internaldate=NOW, flags=FLAGS,
                                  full=RAW if needs.body else None, has_attachment=False if needs.structure else None)


def ruleset(tmp_path: Path, when: Any, then: Any) -> model.RuleSet:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "rules": [{"name": "r", "when": when, "then": [then]}]}))
    return load_ruleset(path).ruleset


def members(union: object) -> set[str]:
    return {kind.__name__ for kind in typing.get_args(union)}


def condition(name: str) -> model.Condition:
    parsed = parse_condition(CONDITIONS[name])
    assert type(parsed).__name__ == name, f"the sample for {name} parses as {type(parsed).__name__}"
    return parsed


def test_every_condition_type_has_a_sample() -> None:
    assert members(model.Condition) == set(CONDITIONS), "add a sample of the new condition type to CONDITIONS"


def test_every_action_type_has_a_sample() -> None:
    assert members(model.Action) == set(ACTIONS), "add a sample of the new action type to ACTIONS"


@pytest.mark.parametrize("name", sorted(CONDITIONS))
def test_the_matcher_and_its_explanation(name: str) -> None:
    cond, ctx = condition(name), EvalContext(now=NOW)
    trace = explain(cond, MESSAGE, ctx)
    assert trace.result == matches(cond, MESSAGE, ctx)
    assert trace.detail


@pytest.mark.parametrize("name", sorted(CONDITIONS))
def test_the_search_pushdown(name: str) -> None:
    query = to_search(condition(name), now=NOW)
    assert isinstance(query, SearchQuery)
    # Not pushed (or not wholly): the local matcher must be left the part the server can't decide.
    assert query.exact or query.residual is not None


@pytest.mark.parametrize("name", sorted(CONDITIONS))
def test_the_fetch_needs_let_the_matcher_decide(name: str) -> None:
    cond = condition(name)
    view = fetched(fetch_needs(cond))
    # What was fetched is enough: no NotFetched, and the same answer as the whole message gives.
    for probe in (cond, model.Not(cond)):
        assert matches(probe, view, EvalContext(now=NOW)) == matches(probe, MESSAGE, EvalContext(now=NOW))


@pytest.mark.parametrize("name", sorted(CONDITIONS))
def test_the_describer(name: str) -> None:
    text = describe(condition(name))
    assert text and "object at" not in text


@pytest.mark.parametrize("name", sorted(CONDITIONS))
def test_sieve_has_a_test_or_says_it_has_none(tmp_path: Path, name: str) -> None:
    rules = ruleset(tmp_path, CONDITIONS[name], "stop")
    try:
        script = to_sieve(rules)
    except SieveUnsupported as exc:
        assert str(exc)
        return
    assert sieve_test(condition(name)).text in script


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_the_evaluator_acts_on_every_action(tmp_path: Path, name: str) -> None:
    rules = ruleset(tmp_path, {"seen": True}, ACTIONS[name])
    outcome = evaluate_message(rules.rules, MESSAGE, folder="INBOX", ctx=EvalContext(now=NOW))
    effects = (outcome.flag_adds, outcome.flag_removes, outcome.copies, outcome.replies, outcome.redirects,
               outcome.terminal, outcome.stopped_by)
    assert outcome.matched == ("r",) and any(effects), f"{name} changed nothing in the outcome"


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_sieve_writes_every_action(tmp_path: Path, name: str) -> None:
    rules = ruleset(tmp_path, {"seen": True}, ACTIONS[name])
    try:
        script = to_sieve(rules, read_template=lambda path: "Thanks")
    except SieveUnsupported as exc:
        assert str(exc)
        return
    assert "if hasflag" in script
