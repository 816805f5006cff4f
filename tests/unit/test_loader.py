"""Loading rule files: every broken file is reported as file:line:col with a clear message."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailrules.errors import Loc, RuleFileError, UsageError
from mailrules.loader import load_ruleset, load_yaml_document
from mailrules.model import All, Delete, FlagTest, HeaderTest, Move, Reply, Stop
from mailrules.yamlsrc import MAX_BYTES, MAX_DEPTH

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Broken:
    """A broken rule set: ``rules.yaml`` plus ``others``, and the problem it must produce."""

    id: str
    text: str | bytes
    message: str
    line: int
    col: int
    file: str = "rules.yaml"
    others: tuple[tuple[str, str], ...] = ()


def rule(body: str, name: str = "a") -> str:
    """A one-rule file; ``body`` holds the rule's keys after the name (indented 4)."""
    return f"version: 1\nrules:\n  - name: {name}\n{body}"


STOP = "    then: [stop]\n"

BROKEN = [
    Broken("yaml-syntax", rule("    when: {from: x\n" + STOP), "YAML syntax error", 5, 9),
    Broken("tab-indentation", "version: 1\nrules:\n\t- name: a\n", "tab character; YAML indentation must use spaces", 3, 1),
    Broken("unknown-top-level-key", "version: 1\nrule: []\n", "unknown key 'rule' in rule file; did you mean 'rules'?", 2, 1),
    Broken("unknown-condition-key", rule("    when: {form: x}\n" + STOP), "unknown key 'form' in condition; did you mean 'from'?", 4, 12),
    Broken("unknown-operator", rule("    when:\n      subject: {equals: x}\n" + STOP), "unknown key 'equals' in header test", 5, 17),
    Broken("two-operators", rule("    when:\n      subject: {contains: x, regex: y}\n" + STOP), "a test takes one operator, found contains, regex", 5, 30),
    Broken("bad-regex", rule("    when:\n      subject: {regex: '(x'}\n" + STOP), "invalid regular expression '(x'", 5, 24),
    Broken("bad-regex-in-list", rule("    when:\n      from: {regex: [ok, '[z']}\n" + STOP), "invalid regular expression '[z'", 5, 26),
    Broken("bad-size", rule("    when: {larger: 5X}\n" + STOP), "'5X' is not a size", 4, 20),
    Broken("fractional-size", rule("    when: {larger: 1.5M}\n" + STOP), "'1.5M' is not a size", 4, 20),
    Broken("bad-duration", rule("    when: {older_than: 30}\n" + STOP), "30 is not a duration", 4, 24),
    Broken("bad-date", rule("    when: {before: 2025-02-30}\n" + STOP), "'2025-02-30' is not a valid calendar day", 4, 20),
    Broken("bad-once-per", rule("    when: {seen: false}\n    then:\n      - reply: {body: hi, once_per: soon}\n"), "'soon' is not a duration", 6, 37),
    Broken("version-2", "version: 2\nrules: []\n", "unsupported rule-file version 2", 1, 10),
    Broken("missing-version", "rules: []\n", "missing 'version: 1'", 1, 1),
    Broken("missing-name", "version: 1\nrules:\n  - when: all\n    then: [stop]\n", "missing 'name' in rule", 3, 5),
    Broken("bad-name-chars", rule("    when: all\n" + STOP, name="my rule"), "rule name 'my rule' may contain only letters", 3, 11),
    Broken("missing-when", rule(STOP), "missing 'when' in rule 'a'", 3, 5),
    Broken("duplicate-rule-name", rule("    when: {seen: true}\n" + STOP) + "  - name: a\n    when: {seen: false}\n" + STOP,
           "duplicate rule name 'a'; first defined at rules.yaml:3:5", 6, 5),
    Broken("duplicate-name-across-include",
           "version: 1\ninclude: [team.yaml]\nrules:\n  - name: shared\n    when: all\n    then: [stop]\n",
           "duplicate rule name 'shared'; first defined at team.yaml:3:5", 4, 5,
           others=(("team.yaml", rule("    when: {seen: true}\n    then: [stop]\n", name="shared")),)),
    Broken("include-cycle", "version: 1\ninclude: [b.yaml]\n", "include cycle: rules.yaml -> b.yaml -> rules.yaml", 3, 5,
           file="b.yaml", others=(("b.yaml", "version: 1\ninclude:\n  - rules.yaml\n"),)),
    Broken("include-missing", "version: 1\ninclude:\n  - team/nope.yaml\n", "cannot include team/nope.yaml: file not found", 3, 5),
    Broken("error-inside-include", "version: 1\ninclude: [team/common.yaml]\n", "unknown key 'thne' in rule; did you mean 'then'?", 5, 5,
           file="team/common.yaml", others=(("team/common.yaml", rule("    when: all\n    thne: [stop]\n")),)),
    Broken("move-and-delete", rule("    when: {seen: true}\n    then:\n      - move: Archive\n      - delete\n"),
           "only one of move, trash and delete; 'delete' conflicts with 'move' at line 6", 7, 9),
    Broken("address-operator-on-subject", rule("    when:\n      subject: {domain: example.com}\n" + STOP),
           "'domain' is an address operator; 'subject' holds no addresses", 5, 17),
    Broken("address-operator-on-list-id", rule("    when:\n      list_id: {address: a@b.c}\n" + STOP),
           "'address' is an address operator; 'list_id' holds no addresses", 5, 17),
    Broken("alias", "version: 1\nrules:\n  - name: a\n    when: &w {seen: true}\n    then: [stop]\n  - name: b\n    when: *w\n" + STOP,
           "YAML aliases (*name) are not supported", 7, 11),
    Broken("duplicate-key", rule("    when: {seen: true}\n    when: {seen: false}\n" + STOP), "duplicate key 'when' (first at line 4)", 5, 5),
    Broken("not-a-mapping", "- name: a\n", "the top level must be a mapping", 1, 1),
    Broken("empty-file", "", "file is empty", 1, 1),
    Broken("not-utf8", b"version: 1\nrules:\n  - name: caf\xe9\n", "not valid UTF-8", 3, 14),
    Broken("flag-not-bool", rule("    when: {seen: maybe}\n" + STOP), "'seen' must be true or false, not a string", 4, 18),
    Broken("enabled-not-bool", rule("    enabled: sometimes\n    when: all\n" + STOP), "'enabled' must be true or false", 4, 14),
    Broken("yaml-boolean-where-text", rule("    when: {subject: on}\n" + STOP), "not true (YAML reads unquoted yes, no, on, off", 4, 21),
    Broken("empty-folder", rule("    when: {seen: true}\n    then:\n      - move: ''\n"), "'move' must not be empty", 6, 15),
    Broken("folder-with-slash-at-end", rule("    when: {seen: true}\n    then:\n      - copy: Archive/\n"), "must not start or end with the hierarchy delimiter", 6, 15),
    Broken("glob-destination", rule("    when: {seen: true}\n    then:\n      - move: 'Lists/*'\n"), "wildcards '*' and '%' are allowed in a rule's folders", 6, 15),
    Broken("glob-trash-folder", "version: 1\ndefaults:\n  trash_folder: 'Trash/%'\nrules: []\n", "not in the destination 'Trash/%'", 3, 17),
    Broken("template-missing", rule("    when: {seen: false}\n    then:\n      - reply: {template: away.j2}\n"), "template file 'away.j2' not found", 6, 27),
    Broken("template-syntax-error", rule("    when: {seen: false}\n    then:\n      - reply: {template: away.j2}\n"),
           "template away.j2: line 2: unexpected end of template", 6, 27, others=(("away.j2", "Hi\n{% if x %}\n"),)),
    Broken("template-outside-folder", rule("    when: {seen: false}\n    then:\n      - reply: {template: ../away.j2}\n"),
           "must be a path inside the rule file's folder", 6, 27),
    Broken("unknown-jinja-filter", rule("    when: {seen: false}\n    then:\n      - reply:\n          body: 'Hello {{ message.subject | shout }}'\n"),
           "template body: line 1: no filter named 'shout'", 7, 17),
    Broken("reply-without-body", rule("    when: {seen: false}\n    then:\n      - reply: {subject: Away}\n"), "'reply' needs one of template, body", 6, 16),
    Broken("reply-with-both", rule("    when: {seen: false}\n    then:\n      - reply: {body: hi, template: a.j2}\n"), "'reply' takes only one of template, body", 6, 27),
    Broken("then-empty", rule("    when: all\n    then: []\n"), "'then' must not be empty", 5, 11),
    Broken("unknown-action", rule("    when: all\n    then:\n      - frobnicate: x\n"), "unknown action 'frobnicate'", 6, 9),
    Broken("misspelt-bare-action", rule("    when: all\n    then:\n      - trsh\n"), "unknown action 'trsh'; did you mean 'trash'?", 6, 9),
    Broken("action-missing-value", rule("    when: all\n    then:\n      - move\n"), "action 'move' needs a value", 6, 9),
    Broken("action-wrong-type", rule("    when: all\n    then:\n      - move: [a, b]\n"), "'move' must be a string, not a list", 6, 15),
    Broken("bare-action-with-value", rule("    when: all\n    then:\n      - delete: true\n"), "'delete' takes no value", 6, 9),
    Broken("two-actions-in-one-item", rule("    when: all\n    then:\n      - move: a\n        flag: seen\n"), "must have only one key, found 'move', 'flag'", 6, 9),
    Broken("bad-keyword", rule("    when: {keyword: 'my label'}\n" + STOP), "flag 'my label' may not contain spaces", 4, 21),
    Broken("unknown-system-flag", rule("    when: all\n    then:\n      - flag: '\\Recent'\n"), "unknown system flag '\\\\Recent'", 6, 15),
    Broken("header-without-name", rule("    when:\n      header: {is: x}\n" + STOP), "missing 'name' in header test", 5, 15),
    Broken("bad-header-name", rule("    when:\n      header: {name: 'X Spam', is: x}\n" + STOP), "'X Spam' is not a header name", 5, 22),
    Broken("bad-redirect", rule("    when: all\n    then:\n      - redirect: accounting\n"), "redirect needs a plain address", 6, 19),
    Broken("when-misspelt-all", rule("    when: alll\n" + STOP), "'when' must be a mapping of conditions or the word 'all', not 'alll'", 4, 11),
    Broken("rules-not-a-list", "version: 1\nrules:\n  a: 1\n", "'rules' must be a list, not a mapping", 3, 3),
]


@pytest.mark.parametrize("case", BROKEN, ids=[case.id for case in BROKEN])
def test_a_broken_rule_file_names_file_line_and_column(case: Broken, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "rules.yaml", case.text)
    for name, text in case.others:
        write(tmp_path, name, text)
    with pytest.raises(RuleFileError) as raised:
        load_ruleset("rules.yaml")
    at_place = [p for p in raised.value.problems if p.loc == Loc(case.file, case.line, case.col)]
    assert any(case.message in p.message and p.severity == "error" for p in at_place), "\n".join(
        str(p) for p in raised.value.problems
    )


def test_the_broken_table_covers_enough_cases() -> None:
    assert len(BROKEN) >= 35
    assert len({case.id for case in BROKEN}) == len(BROKEN)


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        "version: 1\n"
        "colour: blue\n"
        "rules:\n"
        "  - name: a\n"
        "    when: {form: x, seen: 3}\n"
        "    then: [frob]\n"
        "  - name: b\n"
        "    when: {subject: {regex: '(x'}}\n"
        "    then: [stop]\n"
        "  - nme: c\n",
    )
    with pytest.raises(RuleFileError) as raised:
        load_ruleset(path)
    found = {(p.loc.line, p.loc.col) for p in raised.value.problems}
    assert found >= {(2, 1), (5, 12), (5, 27), (6, 12), (8, 29), (10, 5)}
    assert str(raised.value).startswith(f"{path}:2:1: error: unknown key 'colour'")


def test_problems_in_several_files_are_reported_together_and_sorted(tmp_path: Path) -> None:
    write(tmp_path, "team/a.yaml", rule("    when: {sen: true}\n" + STOP))
    top = write(tmp_path, "rules.yaml", "version: 1\ninclude: [team/a.yaml]\nrules:\n  - name: b\n    when: {larger: big}\n" + STOP)
    with pytest.raises(RuleFileError) as raised:
        load_ruleset(top)
    assert [p.loc.file for p in raised.value.problems] == sorted(p.loc.file for p in raised.value.problems)
    assert {p.loc.file for p in raised.value.problems} == {top, str(tmp_path / "team/a.yaml")}


def test_a_missing_rule_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="file not found"):
        load_ruleset(tmp_path / "nope.yaml")


def test_included_rules_come_first_in_listed_order_depth_first(tmp_path: Path) -> None:
    write(tmp_path, "team/base.yaml", rule("    when: all\n    then: [{flag: $Base}]\n", name="base"))
    write(tmp_path, "team/a.yaml", "version: 1\ninclude: [base.yaml]\n" + rule("    when: all\n    then: [{flag: $A}]\n", name="a")[11:])
    write(tmp_path, "b.yaml", rule("    when: all\n    then: [{flag: $B}]\n", name="b"))
    top = write(tmp_path, "rules.yaml", "version: 1\ninclude: [team/a.yaml, b.yaml]\n" + rule("    when: all\n    then: [{flag: $Top}]\n", name="top")[11:])
    result = load_ruleset(top)
    assert [r.name for r in result.ruleset.rules] == ["base", "a", "b", "top"]
    assert result.ruleset.rules[0].source == str(tmp_path / "team/base.yaml")


def test_a_file_included_twice_is_used_once_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path, "common.yaml", rule("    when: {seen: true}\n" + STOP, name="common"))
    write(tmp_path, "a.yaml", "version: 1\ninclude: [common.yaml]\n")
    top = write(tmp_path, "rules.yaml", "version: 1\ninclude: [a.yaml, common.yaml]\n")
    result = load_ruleset(top)
    assert [r.name for r in result.ruleset.rules] == ["common"]
    assert [(w.loc.line, w.loc.col) for w in result.warnings] == [(2, 19)]
    assert "already included" in result.warnings[0].message


def test_defaults_apply_only_to_the_rules_of_their_own_file(tmp_path: Path) -> None:
    write(tmp_path, "team.yaml", rule("    when: all\n    then: [trash]\n", name="team"))
    top = write(
        tmp_path,
        "rules.yaml",
        "version: 1\ninclude: [team.yaml]\ndefaults:\n  folders: [Lists/*]\n  trash_folder: Bin\n  create_folders: false\n"
        "rules:\n  - name: mine\n    when: all\n    then: [trash]\n",
    )
    team, mine = load_ruleset(top).ruleset.rules
    assert (team.folders, team.then[0].folder, team.create_folders) == (("INBOX",), "Trash", True)
    assert (mine.folders, mine.then[0].folder, mine.create_folders) == (("Lists/*",), "Bin", False)


def test_the_top_level_file_names_the_account(tmp_path: Path) -> None:
    write(tmp_path, "team.yaml", "version: 1\naccount: team\n")
    top = write(tmp_path, "rules.yaml", "version: 1\naccount: personal\ninclude: [team.yaml]\n" + rule("    when: all\n" + STOP)[11:])
    assert load_ruleset(top).ruleset.account == "personal"


def test_warnings_do_not_stop_a_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        rule("    when: {}\n    then: [delete]\n", name="everything")
        + "  - name: later\n    when: {any: []}\n    then: [stop]\n"
        + "  - name: elsewhere\n    folders: [Lists/x]\n    when: {all: []}\n    then: [stop]\n",
    )
    result = load_ruleset(path)
    messages = {(w.loc.line, w.message.split(":")[0]) for w in result.warnings}
    assert (4, "an empty condition matches every message") in messages
    assert (6, "rule 'later' can never apply") in messages
    assert (7, "'any") in messages
    assert all(w.severity == "warning" for w in result.warnings)
    assert not any(w.loc.line == 9 and "never apply" in w.message for w in result.warnings)


def test_a_glob_folder_rule_that_takes_everything_hides_later_rules_in_those_folders(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        "version: 1\nrules:\n  - name: all-lists\n    folders: ['Lists/*']\n    when: all\n    then: [stop]\n"
        "  - name: one-list\n    folders: [Lists/python]\n    when: {seen: true}\n    then: [delete]\n"
        "  - name: inbox\n    when: {seen: true}\n    then: [delete]\n",
    )
    unreachable = [w.message for w in load_ruleset(path).warnings if "never apply" in w.message]
    assert len(unreachable) == 1 and unreachable[0].startswith("rule 'one-list'")


def test_warnings_are_part_of_the_error_when_there_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", rule("    when: all\n    then: [stop]\n") + "  - name: a\n    when: all\n    then: [stop]\n")
    with pytest.raises(RuleFileError) as raised:
        load_ruleset(path)
    assert {p.severity for p in raised.value.problems} == {"error", "warning"}


def test_the_example_rule_file_loads_without_problems() -> None:
    result = load_ruleset(REPO / "rules.example.yaml")
    assert result.warnings == []
    names = [r.name for r in result.ruleset.rules]
    assert 10 <= len(names) <= 25
    assert names.index("team-pages") < names.index("spam")
    assert result.ruleset.account == "personal"
    templates = {a.template for r in result.ruleset.rules for a in r.then if isinstance(a, Reply) and a.template}
    assert str(REPO / "examples" / "templates" / "away.txt.j2") in templates


def test_the_schema_validator_is_built_once_however_often_rule_files_load() -> None:
    # Building a Draft 2020-12 validator is the costly part of loading; a second load must reuse it.
    from mailrules import schema

    load_ruleset(REPO / "rules.example.yaml")
    built = schema._validator.cache_info().misses
    load_ruleset(REPO / "rules.example.yaml")
    load_ruleset(REPO / "benchmarks" / "rules.yaml")
    assert schema._validator.cache_info().misses == built


def test_the_example_starts_with_the_schema_comment() -> None:
    first = (REPO / "rules.example.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=schemas/rules.schema.json"


def test_a_parsed_rule_keeps_its_conditions_actions_and_location(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        rule("    when:\n      subject: invoice\n      seen: false\n    then:\n      - move: Finance\n      - stop\n", name="inv"),
    )
    (parsed,) = load_ruleset(path).ruleset.rules
    assert parsed.when == All((HeaderTest("subject", ("Subject",), "contains", ("invoice",)), FlagTest("\\Seen", False)))
    assert parsed.then == (Move("Finance"), Stop())
    assert parsed.loc == Loc(path, 3, 5)
    assert parsed.when.children[0].loc == Loc(path, 5, 7)


def test_a_disabled_rule_is_loaded_but_not_enabled(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", rule("    enabled: false\n    when: all\n    then: [delete]\n"))
    ruleset = load_ruleset(path).ruleset
    assert [r.name for r in ruleset.rules] == ["a"] and ruleset.enabled_rules == ()
    assert ruleset.rules[0].then == (Delete(),)


# ---------------------------------------------------------------- reading YAML safely


def test_a_huge_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"version: 1\n" + b"# padding\n" * (MAX_BYTES // 10 + 1))
    with pytest.raises(RuleFileError, match="larger than 5 MB"):
        load_ruleset(path)


def test_deep_nesting_is_a_problem_not_a_recursion_error(tmp_path: Path) -> None:
    deep = "{not: " * (MAX_DEPTH + 5) + "{seen: true}" + "}" * (MAX_DEPTH + 5)
    path = write(tmp_path, "rules.yaml", rule(f"    when: {deep}\n" + STOP))
    with pytest.raises(RuleFileError, match=f"nested deeper than {MAX_DEPTH} levels"):
        load_ruleset(path)


def test_a_billion_laughs_document_is_refused_at_the_first_alias(tmp_path: Path) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}]" for p, n in zip("abcdefgh", "bcdefghi")]
    path = write(tmp_path, "rules.yaml", "\n".join(lines) + "\n")
    with pytest.raises(RuleFileError) as raised:
        load_ruleset(path)
    assert [(p.loc.line, p.loc.col) for p in raised.value.problems] == [(2, 8)]


def test_a_second_yaml_document_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", "version: 1\n---\nversion: 1\n")
    with pytest.raises(RuleFileError, match="second YAML document"):
        load_ruleset(path)


def test_custom_yaml_tags_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", "version: !!python/object:os.system 1\n")
    with pytest.raises(RuleFileError, match="unsupported YAML tag !!python/object:os.system"):
        load_ruleset(path)


def test_yaml_one_one_booleans_still_work_where_booleans_are_expected(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", rule("    when: {seen: yes, flagged: off}\n" + STOP))
    (parsed,) = load_ruleset(path).ruleset.rules
    assert parsed.when == All((FlagTest("\\Seen", True), FlagTest("\\Flagged", False)))


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes("\ufeff".encode() + rule("    when: all\n" + STOP).encode())
    assert [r.name for r in load_ruleset(path).ruleset.rules] == ["a"]


def test_load_yaml_document_unpacks_to_data_and_locations(tmp_path: Path) -> None:
    path = write(tmp_path, "t.yaml", "rules: ../rules.yaml\ncases: []\n")
    data, locs = load_yaml_document(path)
    assert data == {"rules": "../rules.yaml", "cases": []}
    assert locs.at(("cases",)) == Loc(path, 2, 8) and locs.key(("cases",)) == Loc(path, 2, 1)


def test_load_yaml_document_checks_the_named_schema(tmp_path: Path) -> None:
    path = write(tmp_path, "t.yaml", "rules: ../rules.yaml\ncases: []\n")
    with pytest.raises(RuleFileError, match="'cases' must not be empty"):
        load_yaml_document(path, "ruletest")


def write(root: Path, name: str, text: str | bytes) -> str:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------- no input crashes the loader

_WORDS = sorted(
    {"from", "subject", "list_id", "header", "name", "body", "larger", "older_than", "before", "seen", "keyword",
     "all", "any", "not", "contains", "is", "regex", "exists", "domain", "case_sensitive", "move", "trash", "delete",
     "stop", "flag", "reply", "template", "once_per", "redirect", "5M", "30d", "2025-01-31", "(", "*", "", "../x"}
)  # fmt: skip
_SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=12) | st.sampled_from(_WORDS)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_WORDS) | st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, database=None)
@given(when=_VALUES, then=_VALUES, extra=st.dictionaries(st.sampled_from(["defaults", "include", "account", "folders"]), _VALUES))
def test_no_rule_file_makes_the_loader_fail_other_than_with_located_problems(when: object, then: object, extra: dict) -> None:
    document = {"version": 1, **extra, "rules": [{"name": "r", "when": when, "then": then}]}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rules.yaml"
        path.write_text(json.dumps(document), encoding="utf-8")
        try:
            load_ruleset(path)
        except RuleFileError as exc:
            assert all(p.loc.line >= 1 and p.loc.col >= 1 for p in exc.problems)


def test_a_too_short_string_is_measured_in_characters(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mailrules.errors import RuleFileError
    from mailrules.loader import load_ruleset

    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  - name: a\n    when: all\n    then: [{redirect: ab}]\n")
    with pytest.raises(RuleFileError) as failure:
        load_ruleset(rules)
    assert "characters" in str(failure.value) and "entries" not in str(failure.value)
