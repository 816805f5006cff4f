"""mailrules: sieve-like mail filtering for IMAP mailboxes and Maildirs, driven by YAML rules.

The library API is small; the command line (``mailrules``) is built on it:

>>> import mailrules
>>> loaded = mailrules.load_ruleset("rules.example.yaml")        # doctest: +SKIP
>>> plan = mailrules.build_plan(loaded.ruleset, mailbox, mailrules.PlanOptions(now=now))  # doctest: +SKIP

Names are imported on first use, so ``import mailrules`` stays cheap for a cron run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "BackendError": "mailrules.errors",
    "EvalContext": "mailrules.match",
    "MailrulesError": "mailrules.errors",
    "MaildirMailbox": "mailrules.backends.maildir",
    "MessageView": "mailrules.message",
    "Plan": "mailrules.plan",
    "PlanOptions": "mailrules.planner",
    "Problem": "mailrules.errors",
    "Rule": "mailrules.model",
    "RuleFileError": "mailrules.errors",
    "RuleSet": "mailrules.model",
    "build_plan": "mailrules.planner",
    "evaluate_message": "mailrules.engine",
    "execute_plan": "mailrules.execute",
    "load_ruleset": "mailrules.loader",
    "render_plan": "mailrules.render",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mailrules' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


if TYPE_CHECKING:
    from mailrules.backends.maildir import MaildirMailbox
    from mailrules.engine import evaluate_message
    from mailrules.errors import BackendError, MailrulesError, Problem, RuleFileError
    from mailrules.execute import execute_plan
    from mailrules.loader import load_ruleset
    from mailrules.match import EvalContext
    from mailrules.message import MessageView
    from mailrules.model import Rule, RuleSet
    from mailrules.plan import Plan
    from mailrules.planner import PlanOptions, build_plan
    from mailrules.render import render_plan
