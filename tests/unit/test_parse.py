"""From rule-file data to the AST: every key of the rule language and what it becomes."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from mailrules.errors import RuleFileError
from mailrules.model import (
    ActiveWindow,
    AddFlags,
    AddressTest,
    AgeTest,
    All,
    Any,
    AttachmentTest,
    BodyTest,
    Copy,
    CountTest,
    DateTest,
    Delete,
    FlagTest,
    HeaderExists,
    HeaderTest,
    Move,
    Not,
    Redirect,
    RemoveFlags,
    Reply,
    SizeTest,
    Stop,
    Trash,
)
from mailrules.parse import flag_problem, folder_problem, parse_condition, parse_rule_file, regex_problem
from mailrules.yamlsrc import parse_yaml

# ---------------------------------------------------------------- header tests


@pytest.mark.parametrize(
    ("key", "names"),
    [
        ("from", ("From",)),
        ("to", ("To",)),
        ("cc", ("Cc",)),
        ("bcc", ("Bcc",)),
        ("reply_to", ("Reply-To",)),
        ("sender", ("Sender",)),
        ("recipient", ("To", "Cc", "Bcc")),
        ("subject", ("Subject",)),
    ],
)
def test_a_header_key_with_a_string_tests_contains_on_its_headers(key: str, names: tuple[str, ...]) -> None:
    assert parse_condition({key: "example"}) == HeaderTest(key, names, "contains", ("example",))


def test_a_list_of_strings_means_any_of_them() -> None:
    assert parse_condition({"from": ["a@x.org", "b@y.org"]}) == HeaderTest("from", ("From",), "contains", ("a@x.org", "b@y.org"))


@pytest.mark.parametrize("operator", ["contains", "is", "matches", "regex"])
def test_string_operators_become_header_tests(operator: str) -> None:
    assert parse_condition({"subject": {operator: "Invoice"}}) == HeaderTest("subject", ("Subject",), operator, ("Invoice",))


@pytest.mark.parametrize("operator", ["address", "domain", "localpart", "user", "detail", "display_name"])
def test_address_operators_become_address_tests(operator: str) -> None:
    assert parse_condition({"to": {operator: ["a", "b"]}}) == AddressTest("to", ("To",), operator, ("a", "b"))


def test_case_sensitive_is_carried_to_the_test() -> None:
    assert parse_condition({"from": {"is": "Ann", "case_sensitive": True}}).case_sensitive is True
    assert parse_condition({"from": {"domain": "X.org", "case_sensitive": True}}).case_sensitive is True
    assert parse_condition({"from": {"is": "Ann"}}).case_sensitive is False


def test_exists_tests_presence_or_absence() -> None:
    assert parse_condition({"cc": {"exists": True}}) == HeaderExists("cc", ("Cc",), True)
    assert parse_condition({"list_id": {"exists": False}}) == HeaderExists("list_id", ("List-Id",), False)


def test_list_id_tests_the_list_identifier() -> None:
    assert parse_condition({"list_id": {"is": "python-dev.python.org"}}) == HeaderTest(
        "list_id", ("List-Id",), "is", ("python-dev.python.org",), list_id=True
    )


def test_the_general_header_form_names_its_header_and_tests_the_whole_value() -> None:
    assert parse_condition({"header": {"name": "List-Id", "contains": "python"}}) == HeaderTest(
        "header", ("List-Id",), "contains", ("python",)
    )
    assert parse_condition({"header": {"name": "Delivered-To", "address": "me@x.org"}}) == AddressTest(
        "header", ("Delivered-To",), "address", ("me@x.org",)
    )
    assert parse_condition({"header": {"name": "X-Spam-Flag", "exists": True}}) == HeaderExists("header", ("X-Spam-Flag",), True)


@pytest.mark.parametrize("key", ["subject", "list_id"])
def test_address_operators_on_subject_and_list_id_are_errors(key: str) -> None:
    with pytest.raises(RuleFileError, match=f"'domain' is an address operator; '{key}' holds no addresses"):
        parse_condition({key: {"domain": "example.com"}})


def test_count_reads_a_header_or_the_addresses_of_an_address_key() -> None:
    assert parse_condition({"count": {"header": "Received", "gt": 10}}) == CountTest("Received", ("Received",), "gt", 10)
    assert parse_condition({"count": {"header": "recipient", "ge": 3}}) == CountTest(
        "recipient", ("To", "Cc", "Bcc"), "ge", 3, addresses=True)


def test_index_picks_one_occurrence_of_a_named_header() -> None:
    cond = parse_condition({"header": {"name": "Received", "index": -1, "contains": "mx"}})
    assert cond == HeaderTest("header", ("Received",), "contains", ("mx",), index=-1)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"header": {"name": "Received", "index": 0, "contains": "x"}}, "index must be a whole number other than 0"),
        ({"header": {"name": "Received", "index": True, "contains": "x"}}, "index must be a whole number"),
        ({"header": {"name": "X", "index": 1, "exists": True}}, "with 'exists' use count"),
        ({"count": {"header": "Received", "gt": -1}}, "at least 0"),
        ({"count": {"header": "Received"}}, "exactly one operator of gt, ge, lt, le, eq, ne"),
        ({"count": {"header": "Bad Name", "gt": 1}}, "not a header name"),
    ],
)
def test_count_and_index_problems(data: object, problem: str) -> None:
    with pytest.raises(RuleFileError) as error:
        parse_condition(data)
    assert problem in str(error.value)
    assert len(error.value.problems) == 1


def test_a_test_takes_exactly_one_operator() -> None:
    with pytest.raises(RuleFileError, match="exactly one operator"):
        parse_condition({"subject": {"contains": "a", "regex": "b"}})


def test_a_regex_must_compile() -> None:
    with pytest.raises(RuleFileError, match="invalid regular expression"):
        parse_condition({"from": {"regex": ["ok", "(broken"]}})


# ---------------------------------------------------------------- body, size, dates, flags


def test_body_and_text_take_a_string_or_an_operator() -> None:
    assert parse_condition({"body": "unsubscribe"}) == BodyTest("body", "contains", ("unsubscribe",))
    assert parse_condition({"text": {"regex": "^Total:", "case_sensitive": True}}) == BodyTest("text", "regex", ("^Total:",), True)


def test_sizes_are_bytes() -> None:
    assert parse_condition({"larger": "5M"}) == SizeTest("larger", 5 * 1024 * 1024)
    assert parse_condition({"smaller": 2048}) == SizeTest("smaller", 2048)


def test_ages_are_seconds() -> None:
    assert parse_condition({"older_than": "30d"}) == AgeTest("older_than", 30 * 86400)
    assert parse_condition({"newer_than": "12h"}) == AgeTest("newer_than", 12 * 3600)


@pytest.mark.parametrize(
    ("key", "source", "operator"),
    [("before", "arrival", "before"), ("since", "arrival", "since"), ("sent_before", "sent", "before"), ("sent_since", "sent", "since")],
)
def test_day_keys_say_which_date_they_compare(key: str, source: str, operator: str) -> None:
    assert parse_condition({key: "2025-01-31"}) == DateTest(source, operator, date(2025, 1, 31))


@pytest.mark.parametrize("flag", ["seen", "answered", "flagged", "deleted", "draft"])
def test_system_flag_keys_test_the_canonical_flag(flag: str) -> None:
    canonical = "\\" + flag.capitalize()
    assert parse_condition({flag: True}) == FlagTest(canonical, True)
    assert parse_condition({flag: False}) == FlagTest(canonical, False)


def test_keyword_tests_each_keyword_and_a_list_needs_all() -> None:
    assert parse_condition({"keyword": "$Invoice"}) == FlagTest("$Invoice", True)
    assert parse_condition({"keyword": ["$A", "Seen"]}) == All((FlagTest("$A", True), FlagTest("\\Seen", True)))


def test_has_attachment() -> None:
    assert parse_condition({"has_attachment": True}) == AttachmentTest(True)


# ---------------------------------------------------------------- combining


def test_several_keys_must_all_hold_in_the_order_written() -> None:
    assert parse_condition({"seen": False, "subject": "x"}) == All(
        (FlagTest("\\Seen", False), HeaderTest("subject", ("Subject",), "contains", ("x",)))
    )


def test_all_any_and_not_nest() -> None:
    condition = parse_condition({"any": [{"from": "a"}, {"not": {"seen": True}}], "all": []})
    assert condition == All(
        (
            Any((HeaderTest("from", ("From",), "contains", ("a",)), Not(FlagTest("\\Seen", True)))),
            All(()),
        )
    )


@pytest.mark.parametrize("when", ["all", {}])
def test_when_all_and_an_empty_mapping_match_every_message(when: object) -> None:
    assert parse_condition(when) == All(())


# ---------------------------------------------------------------- actions and rules


def parse_rules(text: str, file: str = "rules.yaml") -> tuple:
    parsed = parse_rule_file(parse_yaml(text, file))
    assert [p for p in parsed.problems if p.severity == "error"] == []
    return parsed.rules


def actions_of(then: str, defaults: str = "") -> tuple:
    (rule,) = parse_rules(f"version: 1\n{defaults}rules:\n  - name: r\n    when: all\n    then: {then}\n")
    return rule.then


def test_bare_word_actions() -> None:
    assert actions_of("[delete, stop]") == (Delete(), Stop())
    assert actions_of("[trash]") == (Trash("Trash", use="\\Trash"),)  # the server's trash, else Trash


def test_a_bare_trash_uses_the_files_trash_folder() -> None:
    assert actions_of("[trash]", "defaults: {trash_folder: Deleted Items}\n") == (Trash("Deleted Items", use="\\Trash"),)
    assert actions_of("[{trash: Bin}]", "defaults: {trash_folder: Deleted Items}\n") == (Trash("Bin"),)


def test_move_and_copy_name_folders() -> None:
    assert actions_of("[{copy: Finance/Invoices}, {move: Archive}]") == (Copy("Finance/Invoices"), Move("Archive"))


def test_flag_actions_use_canonical_names_once_each() -> None:
    assert actions_of("[{flag: [seen, $Invoice, Seen]}, {unflag: flagged}]") == (
        AddFlags(("\\Seen", "$Invoice")),
        RemoveFlags(("\\Flagged",)),
    )


def test_redirect() -> None:
    assert actions_of("[{redirect: accounting@example.com}]") == (Redirect("accounting@example.com"),)


def test_a_reply_resolves_its_template_against_the_rule_file(tmp_path: Path) -> None:
    file = str(tmp_path / "rules.yaml")
    text = (
        "version: 1\nrules:\n  - name: away\n    when: all\n    then:\n"
        "      - reply: {template: t/away.j2, from: a@example.com, once_per: 2w, save_to: Sent, require_recipient: false}\n"
    )
    (rule,) = parse_rules(text, file)
    assert rule.then == (
        Reply(
            template=os.path.join(str(tmp_path), "t", "away.j2"),
            sender="a@example.com",
            once_per_seconds=14 * 86400,
            save_to="Sent",
            require_recipient=False,
        ),
    )


def test_a_reply_has_rfc_3834_friendly_defaults() -> None:
    (reply,) = actions_of("[{reply: {body: 'Away', subject: 'Re: {{ message.subject }}'}}]")
    assert (reply.body, reply.subject, reply.once_per_seconds, reply.require_recipient, reply.template) == (
        "Away",
        "Re: {{ message.subject }}",
        7 * 86400,
        True,
        None,
    )


def test_a_rule_takes_its_files_defaults() -> None:
    text = (
        "version: 1\ndefaults: {folders: ['Lists/*'], create_folders: false}\nrules:\n"
        "  - name: a\n    when: all\n    then: [stop]\n"
        "  - name: b\n    description: own folders\n    folders: [INBOX, Archive]\n    enabled: false\n    when: all\n    then: [stop]\n"
    )
    a, b = parse_rules(text)
    assert (a.folders, a.create_folders, a.enabled, a.description, a.source) == (("Lists/*",), False, True, None, "rules.yaml")
    assert (b.folders, b.enabled, b.description) == (("INBOX", "Archive"), False, "own folders")


def test_an_active_window_names_its_days_and_zone() -> None:
    (rule,) = parse_rules("version: 1\nrules:\n  - name: a\n    active: {from: 2026-12-20, until: '2027-01-06', zone: '+0100'}\n"
                          "    when: all\n    then: [stop]\n")
    assert rule.active == ActiveWindow(date(2026, 12, 20), date(2027, 1, 6), "+0100")


@pytest.mark.parametrize(
    ("window", "problem"),
    [
        ("{from: 2027-01-06, until: 2026-12-20}", "ends (2026-12-20) before it starts (2027-01-06)"),
        ("{from: 2026-13-01}", "not a valid calendar day"),
        ("{zone: UTC}", "active needs from: and/or until:"),
        ("{from: 2026-12-20, zone: Moon/Base}", "unknown time zone 'Moon/Base'"),
        ("{from: 2026-12-20, zone: +0100}", "quote it"),
    ],
)
def test_active_window_problems(window: str, problem: str) -> None:
    doc = parse_yaml(f"version: 1\nrules:\n  - name: a\n    active: {window}\n    when: all\n    then: [stop]\n", "rules.yaml")
    problems = [p.message for p in parse_rule_file(doc).problems if p.severity == "error"]
    assert len(problems) == 1 and problem in problems[0]


def test_without_defaults_a_rule_runs_on_the_inbox() -> None:
    (rule,) = parse_rules("version: 1\nrules:\n  - name: a\n    when: all\n    then: [stop]\n")
    assert (rule.folders, rule.create_folders) == (("INBOX",), True)


def test_two_placements_in_one_rule_are_an_error_but_stop_may_accompany_one() -> None:
    ok = parse_rule_file(parse_yaml("version: 1\nrules:\n  - name: a\n    when: {seen: true}\n    then: [{move: X}, stop]\n", "r.yaml"))
    assert ok.problems == ()
    bad = parse_rule_file(parse_yaml("version: 1\nrules:\n  - name: a\n    when: {seen: true}\n    then: [{move: X}, trash]\n", "r.yaml"))
    assert ["conflicts with 'move'" in p.message for p in bad.problems] == [True]


def test_rules_the_schema_rejected_can_be_skipped() -> None:
    doc = parse_yaml("version: 1\nrules:\n  - name: a\n    when: {larger: huge}\n    then: [stop]\n", "r.yaml")
    assert len(parse_rule_file(doc).problems) == 1
    assert parse_rule_file(doc, skip={("rules", 0)}).problems == ()


# ---------------------------------------------------------------- names that a server can hold


@pytest.mark.parametrize(
    ("name", "destination", "problem"),
    [
        ("Archive/2024", True, None),
        ("Lists/*", False, None),
        ("Lists/%", False, None),
        ("", True, "empty"),
        ("   ", False, "empty"),
        ("Bad\tName", True, "control character"),
        ("/Archive", True, "must not start or end"),
        ("Archive/", False, "must not start or end"),
        ("A//B", True, "empty level"),
        ("Lists/*", True, "wildcards"),
        ("100%", True, "wildcards"),
    ],
)
def test_folder_names(name: str, destination: bool, problem: str | None) -> None:
    found = folder_problem(name, destination=destination)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize(
    ("flag", "problem"),
    [
        ("$Invoice", None),
        ("seen", None),
        ("\\Flagged", None),
        ("\\Recent", "unknown system flag"),
        ("two words", "spaces"),
        ("a(b", "may not contain"),
        ("100%", "may not contain"),
        ("Grüße", "printable ASCII"),
        ("", "non-empty"),
    ],
)
def test_flag_names_are_imap_atoms(flag: str, problem: str | None) -> None:
    found = flag_problem(flag)
    assert (found is None) if problem is None else (problem in found)


def test_regex_problem_names_the_position() -> None:
    assert regex_problem("a)b") == "invalid regular expression 'a)b': unbalanced parenthesis at position 1"
    assert regex_problem(r"\bInvoice\b") is None
