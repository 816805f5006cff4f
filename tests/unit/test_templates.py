"""`validate` and `test` render every reply template against a sample message, strictly, as a user runs them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.cli import run_cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

HEADER = """\
version: 1
rules:
  - name: away
    when: {subject: GRÜSSE}
    then:
      - reply:
"""


def rules_in(folder: Path, reply: str, templates: dict[str, str] | None = None) -> Path:
    for name, text in (templates or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (folder / "rules.yaml").write_text(HEADER + reply)
    return folder


@pytest.mark.parametrize("reply, where, says", [
    ('          body: "hi {{ message.subjet }}"\n', "rules.yaml:7:32", "'message' has no 'subjet'"),
    ('          subject: "Re: {{ mesage.subject }}"\n          body: hi\n', "rules.yaml:7:28", "'mesage' is undefined"),
    ("          body: |\n            Hello,\n            {% if rule.name %}{{ account.adress }}{% endif %}\n",
     "rules.yaml:9:42", "'account' has no 'adress'"),
    ('          body: "{{ message[\'form\'] }}"\n', "rules.yaml:7:30", "'message' has no 'form'"),
    ("          body: \"{{ message.subject.nope }}\"\n", "rules.yaml:7:37", "has no attribute 'nope'"),
])
def test_validate_names_the_undefined_key_in_an_inline_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                reply: str, where: str, says: str) -> None:
    monkeypatch.chdir(rules_in(tmp_path, reply))
    result = run_cli(["validate", "rules.yaml"])
    assert result.code == 2, result.output
    assert f"{where}: error: template " in result.stderr and says in result.stderr, result.stderr


def test_validate_names_the_line_of_a_template_file_and_of_a_file_it_includes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(rules_in(tmp_path, "          template: templates/away.txt.j2\n",
                               {"templates/away.txt.j2": "Hello,\n\nthanks for {{ message.subjcet }}.\n"}))
    result = run_cli(["validate", "rules.yaml"])
    assert result.code == 2
    assert ("templates/away.txt.j2:3:23: error: 'message' has no 'subjcet'" in result.stderr
            and "named at rules.yaml:7:21" in result.stderr), result.stderr
    (tmp_path / "templates" / "away.txt.j2").write_text('Hello\n{% include "templates/sig.j2" %}\n')
    (tmp_path / "templates" / "sig.j2").write_text("--\n{{ account.nmae }}\n")
    result = run_cli(["validate", "rules.yaml"])
    assert result.code == 2 and "templates/sig.j2:2:12: error:" in result.stderr and "'nmae'" in result.stderr, \
        result.stderr


def test_only_what_no_message_has_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Headers a message may or may not have, slices, loops, local names, `is defined`, globals:
    # all render for some message, so only the typo on the last line is an error.
    body = ("          body: |\n"
            "            {% set greeting = 'Hi' %}{{ greeting }} {{ message.from }},\n"
            "            {% for address in account.addresses %}{{ loop.index }} {{ address }}{% endfor %}\n"
            "            {{ message.headers['X-Ticket'] }} {{ message.headers.get('x-other', '') }}\n"
            "            {{ message.text[:200] | upper }} {{ message.text.splitlines()[5] | default('') }}\n"
            "            {% if rule.description is defined %}{{ rule.description }}{% endif %}\n"
            "            {{ range(2) | list }} {{ message.date }} {{ message.message_id }} {{ message.cc }}\n"
            "            {{ message.to }} {{ message.subjet }}\n")
    monkeypatch.chdir(rules_in(tmp_path, body))
    result = run_cli(["validate", "rules.yaml"])
    assert result.code == 2
    assert result.stderr.splitlines() == [
        "rules.yaml:14:41: error: template body: 'message' has no 'subjet'; "
        "it has cc, date, from, headers, message_id, subject, text, to"]


def test_mailrules_test_reports_a_broken_template_like_validate(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    rules_in(tmp_path, '          body: "hi {{ message.subjet }}"\n')
    shutil.copy(FIXTURES / "grusse-utf8-headers.eml", tmp_path / "grusse.eml")
    (tmp_path / "rules.test.yaml").write_text(
        "rules: rules.yaml\ncases:\n  - name: greetings are answered\n    message: grusse.eml\n"
        "    expect: {rules: [away], replies: 1}\n")
    monkeypatch.chdir(tmp_path)
    result = run_cli(["test", "rules.test.yaml"])
    assert result.code == 2, result.output
    assert "rules.yaml:7:32: error: template body: 'message' has no 'subjet'" in result.output
