"""Reply templates and the rule cache give the same answer whatever folder a command starts in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailrules.cache import load_ruleset_cached
from mailrules.model import Reply
from tests.support.cli import run_cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

RULES = """\
version: 1
include: [common.yaml]
rules:
  - name: away
    when: {subject: GRÜSSE}
    then:
      - reply:
          template: templates/away.txt.j2
"""
COMMON = "version: 1\nrules:\n  - name: {name}\n    when: {{subject: lottery}}\n    then: [delete]\n"


def lay_out(folder: Path, name: str = "spam") -> Path:
    (folder / "templates").mkdir(parents=True)
    (folder / "rules.yaml").write_text(RULES)
    (folder / "common.yaml").write_text(COMMON.format(name=name))
    (folder / "templates" / "away.txt.j2").write_text("Hi {{ message.from }}, I am away.\n")
    shutil.copy(FIXTURES / "grusse-utf8-headers.eml", folder / "msg.eml")
    return folder


def test_explain_renders_a_template_reply_from_the_rule_files_folder(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(lay_out(tmp_path / "mail"))
    result = run_cli(["explain", "rules.yaml", "msg.eml"])
    assert result.code == 0, result.output
    assert "template failed" not in result.stdout
    assert "| Hi Jürgen Müller <jürgen@bücher.example>, I am away." in result.stdout


def test_the_cache_sees_an_edit_whatever_folder_the_next_run_starts_in(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    mail, copy, cache = lay_out(tmp_path / "mail"), lay_out(tmp_path / "copy"), tmp_path / "cache"
    monkeypatch.chdir(mail)
    first, _ = load_ruleset_cached("rules.yaml", cache)
    assert [rule.name for rule in first.rules] == ["spam", "away"]
    (mail / "common.yaml").write_text(COMMON.format(name="lottery"))
    # The next run names the same file absolutely, from a folder holding an unchanged copy.
    monkeypatch.chdir(copy)
    second, _ = load_ruleset_cached(mail / "rules.yaml", cache)
    assert [rule.name for rule in second.rules] == ["lottery", "away"]
    [reply] = [action for action in second.rules[1].then if isinstance(action, Reply)]
    assert reply.template == str(mail / "templates" / "away.txt.j2")


def test_a_cached_relative_rule_file_still_finds_its_templates(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from mailrules.reply import render_reply, template_root

    mail, cache = lay_out(tmp_path / "mail"), tmp_path / "cache"
    monkeypatch.chdir(mail)
    load_ruleset_cached("rules.yaml", cache)
    monkeypatch.chdir(tmp_path)
    for name in ("mail/rules.yaml", str(mail / "rules.yaml")):
        ruleset, _ = load_ruleset_cached(name, cache)
        rule = ruleset.rules[1]
        [reply] = [action for action in rule.then if isinstance(action, Reply)]
        variables = {"message": {"from": "Ann", "subject": "Hi"}}
        assert render_reply(reply, variables, template_root(rule)) == ("Auto: Hi", "Hi Ann, I am away.\n")
