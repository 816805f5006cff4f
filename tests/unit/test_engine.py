"""What the rules do to one message (spec §3 and §7): order, terminal actions, flags, outcome."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from mailrules import model
from mailrules.engine import MessageOutcome, evaluate_message, outside_window, rule_active, uses_flags
from mailrules.match import EvalContext
from mailrules.message import MessageView
from mailrules.model import (
    AddFlags,
    All,
    Copy,
    Delete,
    FlagTest,
    HeaderTest,
    Move,
    Not,
    Redirect,
    RemoveFlags,
    Reply,
    Rule,
    Stop,
    Trash,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"
CTX = EvalContext(now=datetime(2026, 11, 20, 10, tzinfo=timezone.utc))
EVERY = All(())
NEVER = model.Any(())


def fixture(name: str, flags: tuple[str, ...] = ()) -> MessageView:
    return MessageView.from_bytes((FIXTURES / name).read_bytes(), flags=flags)


GITHUB = fixture("github-notification.eml")


def rule(
    name: str, when: model.Condition, *then: model.Action, folders: tuple[str, ...] = ("INBOX",), enabled: bool = True
) -> Rule:
    return Rule(name=name, when=when, then=then, folders=folders, enabled=enabled)


def from_contains(text: str) -> HeaderTest:
    return HeaderTest("from", ("From",), "contains", (text,))


def run(rules: list[Rule], msg: MessageView = GITHUB, folder: str = "INBOX", **kwargs: object) -> MessageOutcome:
    return evaluate_message(rules, msg, folder=folder, ctx=CTX, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- order and terminal actions


def test_matching_rules_are_listed_in_file_order_and_non_matching_ones_are_not() -> None:
    outcome = run([
        rule("first", EVERY, AddFlags(("$A",))),
        rule("miss", NEVER, AddFlags(("$Miss",))),
        rule("github", from_contains("github.com"), AddFlags(("$B",))),
    ])
    assert outcome.matched == ("first", "github")
    assert outcome.final_flags == ("$A", "$B")


def test_a_message_no_rule_matches_stays_where_it_is_unchanged() -> None:
    outcome = run([rule("miss", NEVER, Move("Elsewhere"))], fixture("invoice-pdf.eml", ("\\Seen",)))
    assert (outcome.matched, outcome.terminal) == ((), None)
    assert (outcome.final_folders, outcome.final_flags) == (("INBOX",), ("\\Seen",))
    assert not outcome.changes_anything


def test_a_move_ends_processing_and_the_message_ends_up_only_in_the_destination() -> None:
    outcome = run([
        rule("github", from_contains("github"), Move("Notifications/GitHub")),
        rule("later", EVERY, Move("Other")),
    ])
    assert outcome.matched == ("github",)
    assert outcome.terminal == ("move", "Notifications/GitHub", "github")
    assert outcome.final_folders == ("Notifications/GitHub",)


def test_of_two_matching_moves_the_first_wins() -> None:
    outcome = run([rule("a", EVERY, Move("A")), rule("b", EVERY, Move("B"))])
    assert (outcome.matched, outcome.final_folders) == (("a",), ("A",))


def test_stop_ends_processing_and_keeps_the_message_in_place() -> None:
    outcome = run([rule("stopper", EVERY, AddFlags(("\\Seen",)), Stop()), rule("later", EVERY, Move("X"))])
    assert (outcome.matched, outcome.terminal, outcome.stopped_by) == (("stopper",), None, "stopper")
    assert (outcome.final_folders, outcome.final_flags) == (("INBOX",), ("\\Seen",))


def test_a_non_matching_rule_with_a_terminal_action_does_not_end_processing() -> None:
    outcome = run([rule("miss", NEVER, Stop()), rule("hit", EVERY, Move("X"))])
    assert outcome.matched == ("hit",)


def test_trash_moves_to_the_trash_folder() -> None:
    outcome = run([rule("bin", EVERY, Trash("Trash"))])
    assert (outcome.terminal, outcome.final_folders) == (("trash", "Trash", "bin"), ("Trash",))


def test_a_deleted_message_ends_up_nowhere_without_flags() -> None:
    outcome = run([rule("gone", EVERY, AddFlags(("\\Flagged",)), Delete())], fixture("invoice-pdf.eml", ("\\Seen",)))
    assert outcome.deleted
    assert (outcome.terminal, outcome.final_folders, outcome.final_flags) == (("delete", None, "gone"), (), ())
    assert outcome.to_json() == {"folders": [], "flags": [], "replies": 0, "redirects": []}


def test_a_message_copied_and_then_deleted_ends_up_in_the_copy_folders_with_its_flags() -> None:
    outcome = run([
        rule("keep-a-copy", EVERY, Copy("Archive"), AddFlags(("$Archived",))),
        rule("copy-again", EVERY, Copy("Backup")),
        rule("gone", EVERY, Delete()),
    ], fixture("invoice-pdf.eml", ("\\Seen",)))
    assert outcome.copies == (("keep-a-copy", "Archive"), ("copy-again", "Backup"))
    assert outcome.final_folders == ("Archive", "Backup")
    assert outcome.final_flags == ("$Archived", "\\Seen")


def test_a_copy_keeps_the_original_where_it_is() -> None:
    outcome = run([rule("c", EVERY, Copy("Archive"))])
    assert (outcome.terminal, outcome.final_folders) == (None, ("INBOX", "Archive"))


def test_a_moved_message_carries_flags_from_its_own_rule_even_when_listed_after_the_move() -> None:
    outcome = run([rule("file", EVERY, Move("Done"), AddFlags(("seen",)), Copy("Log"))])
    assert outcome.flag_adds == ("\\Seen",)
    assert outcome.final_folders == ("Done", "Log")
    assert outcome.final_flags == ("\\Seen",)


def test_a_move_into_the_current_folder_keeps_the_message_and_still_ends_processing() -> None:
    outcome = run([rule("noop", EVERY, Move("inbox")), rule("later", EVERY, Move("X"))])
    assert (outcome.terminal, outcome.stopped_by, outcome.final_folders) == (None, "noop", ("INBOX",))


def test_trash_of_a_message_already_in_trash_keeps_it() -> None:
    outcome = run([rule("bin", EVERY, Trash("Trash"), folders=("*",))], folder="Trash")
    assert (outcome.terminal, outcome.final_folders) == (None, ("Trash",))


# ---------------------------------------------------------------- a message is filed once per folder


def test_a_copy_into_the_folder_a_later_rule_moves_to_is_filed_once() -> None:
    outcome = run([rule("c", EVERY, Copy("Archive")), rule("m", EVERY, Move("Archive"))])
    assert (outcome.copies, outcome.final_folders) == ((), ("Archive",))


def test_a_copy_into_the_current_folder_of_a_kept_message_is_dropped() -> None:
    outcome = run([rule("c", EVERY, Copy("INBOX"))])
    assert (outcome.copies, outcome.final_folders) == ((), ("INBOX",))


def test_a_second_copy_into_the_same_folder_is_dropped() -> None:
    outcome = run([rule("a", EVERY, Copy("Archive")), rule("b", EVERY, Copy("Archive"))])
    assert outcome.copies == (("a", "Archive"),)


def test_a_second_redirect_to_the_same_address_is_dropped() -> None:
    outcome = run([
        rule("a", EVERY, Redirect("bob@example.org")),
        rule("b", EVERY, Redirect("BOB@example.org"), Redirect("carol@example.org")),
    ])
    assert outcome.redirects == (("a", "bob@example.org"), ("b", "carol@example.org"))


# ---------------------------------------------------------------- flags


def test_flags_added_by_an_earlier_rule_are_visible_to_later_flag_tests() -> None:
    outcome = run([
        rule("mark", from_contains("github"), AddFlags(("$GitHub",))),
        rule("marked", FlagTest("$github", True), Move("GitHub")),
    ])
    assert outcome.matched == ("mark", "marked")


def test_flags_removed_by_an_earlier_rule_are_gone_for_later_flag_tests() -> None:
    outcome = run([
        rule("unread", EVERY, RemoveFlags(("\\Seen",))),
        rule("read", FlagTest("\\Seen", True), Move("Read")),
    ], fixture("invoice-pdf.eml", ("\\Seen",)))
    assert outcome.matched == ("unread",)
    assert (outcome.flag_removes, outcome.final_flags) == (("\\Seen",), ())


def test_flag_changes_are_net_changes_against_the_original_flags() -> None:
    outcome = run([
        rule("add", EVERY, AddFlags(("\\Flagged", "$New", "\\Seen"))),
        rule("remove", EVERY, RemoveFlags(("\\Flagged", "$old"))),
    ], fixture("invoice-pdf.eml", ("\\Seen", "$Old")))
    assert (outcome.flag_adds, outcome.flag_removes) == (("$New",), ("$Old",))
    assert outcome.final_flags == ("$New", "\\Seen")


def test_adding_a_keyword_in_another_case_changes_nothing() -> None:
    outcome = run([rule("add", EVERY, AddFlags(("$invoice",)))], fixture("invoice-pdf.eml", ("$Invoice",)))
    assert (outcome.flag_adds, outcome.final_flags) == ((), ("$Invoice",))


def test_a_deleted_flag_is_just_a_flag() -> None:
    outcome = run([rule("mark", EVERY, AddFlags(("\\Deleted",)))])
    assert (outcome.terminal, outcome.final_folders, outcome.final_flags) == (None, ("INBOX",), ("\\Deleted",))


# ---------------------------------------------------------------- which rules apply


def test_only_rules_whose_folder_globs_cover_the_folder_apply() -> None:
    rules = [
        rule("inbox-only", EVERY, AddFlags(("$Inbox",))),
        rule("lists", EVERY, AddFlags(("$List",)), folders=("Lists/*",)),
        rule("top", EVERY, AddFlags(("$Top",)), folders=("%",)),
    ]
    assert run(rules, folder="Lists/python").matched == ("lists",)
    assert run(rules, folder="inbox").matched == ("inbox-only", "top")


def test_disabled_rules_never_apply() -> None:
    assert run([rule("off", EVERY, Move("X"), enabled=False)]).matched == ()


def test_the_delimiter_decides_what_percent_covers() -> None:
    rules = [rule("lists", EVERY, Stop(), folders=("Lists.%",))]
    assert run(rules, folder="Lists.python", delimiter=".").matched == ("lists",)
    assert run(rules, folder="Lists.python.dev", delimiter=".").matched == ()


# ---------------------------------------------------------------- verdicts from the server


def test_a_server_verdict_replaces_local_evaluation() -> None:
    rules = [rule("said-yes", NEVER, AddFlags(("$Yes",))), rule("said-no", EVERY, AddFlags(("$No",)))]
    outcome = run(rules, verdicts={"said-yes": True, "said-no": False})
    assert outcome.matched == ("said-yes",)


def test_rules_without_a_verdict_are_evaluated_locally() -> None:
    outcome = run([rule("local", from_contains("github"), Stop())], verdicts={"other": False})
    assert outcome.matched == ("local",)


def test_a_verdict_is_ignored_when_earlier_rules_changed_flags_the_rule_tests() -> None:
    rules = [
        rule("mark", EVERY, AddFlags(("$Seen-By-Rules",))),
        rule("unmarked", Not(FlagTest("$Seen-By-Rules", True)), Move("Unmarked")),
    ]
    outcome = run(rules, verdicts={"unmarked": True})  # decided on the flags before "mark" ran
    assert outcome.matched == ("mark",)


def test_uses_flags_finds_flag_tests_at_any_depth() -> None:
    assert uses_flags(All((from_contains("x"), model.Any((Not(FlagTest("\\Seen", True)),)))))
    assert not uses_flags(All((from_contains("x"),)))


# ---------------------------------------------------------------- replies, redirects, explanations, JSON


def test_replies_and_redirects_are_collected_with_their_rules() -> None:
    reply = Reply(subject="Away")
    outcome = run([rule("away", EVERY, reply, Redirect("bob@example.org"))])
    assert (outcome.replies, outcome.redirects) == ((("away", reply),), (("away", "bob@example.org"),))


def test_to_json_is_the_outcome_object_of_explain() -> None:
    outcome = run([
        rule(
            "file",
            from_contains("github"),
            AddFlags(("seen", "$GitHub")),
            Reply(),
            Redirect("bob@example.org"),
            Move("GitHub"),
        ),
    ])
    assert outcome.to_json() == {
        "folders": ["GitHub"],
        "flags": ["$GitHub", "\\Seen"],
        "replies": 1,
        "redirects": ["bob@example.org"],
    }


def test_explain_keeps_a_trace_for_every_evaluated_rule() -> None:
    rules = [
        rule("miss", from_contains("nobody"), Stop()),
        rule("server", NEVER, AddFlags(("$X",))),
        rule("hit", from_contains("github"), Stop()),
        rule("never-reached", EVERY, Stop()),
    ]
    outcome = run(rules, verdicts={"server": True}, explain=True)
    results = [(name, trace.result) for name, trace in outcome.traces]
    assert results == [("miss", False), ("server", True), ("hit", True)]
    assert outcome.traces[1][1].detail == "decided by the server's search"


def test_without_explain_there_are_no_traces() -> None:
    assert run([rule("hit", EVERY, Stop())]).traces == ()


@pytest.mark.parametrize(
    ("then", "final_folders"),
    [
        ((Move("A"),), ("A",)),
        ((Copy("B"), Move("A")), ("A", "B")),
        ((Copy("B"), Delete()), ("B",)),
        ((Delete(),), ()),
        ((Copy("B"),), ("INBOX", "B")),
        ((Stop(),), ("INBOX",)),
        ((Move("A"), Stop()), ("A",)),
    ],
)
def test_final_folders_of_one_rules_actions(then: tuple[model.Action, ...], final_folders: tuple[str, ...]) -> None:
    assert run([rule("r", EVERY, *then)]).final_folders == final_folders


# ---------------------------------------------------------------- active windows


def windowed(window: model.ActiveWindow) -> model.Rule:
    return model.Rule("away", EVERY, (model.AddFlags(("$Away",)),), active=window)


@pytest.mark.parametrize(
    ("window", "now", "active"),
    [
        (model.ActiveWindow(date(2026, 12, 20), date(2027, 1, 6)), datetime(2026, 12, 19, 23, 59, tzinfo=timezone.utc), False),
        (model.ActiveWindow(date(2026, 12, 20), date(2027, 1, 6)), datetime(2026, 12, 20, 0, 0, tzinfo=timezone.utc), True),
        (model.ActiveWindow(date(2026, 12, 20), date(2027, 1, 6)), datetime(2027, 1, 6, 23, 59, tzinfo=timezone.utc), True),
        (model.ActiveWindow(date(2026, 12, 20), date(2027, 1, 6)), datetime(2027, 1, 7, 0, 0, tzinfo=timezone.utc), False),
        (model.ActiveWindow(until=date(2027, 1, 6), zone="Europe/Berlin"), datetime(2027, 1, 6, 23, 30, tzinfo=timezone.utc), False),
        (model.ActiveWindow(start=date(2026, 12, 20), zone="-0500"), datetime(2026, 12, 20, 3, 0, tzinfo=timezone.utc), False),
    ],
)
def test_a_rule_applies_only_on_the_days_of_its_active_window(
    window: model.ActiveWindow, now: datetime, active: bool
) -> None:
    rule = windowed(window)
    assert rule_active(rule, now) is active
    outcome = evaluate_message((rule,), fixture("github-pr.eml"), folder="INBOX", ctx=EvalContext(now=now), explain=True)
    assert ("away" in outcome.matched) is active
    assert bool(outside_window([rule], now)) is not active
    if not active:
        assert "outside its active window" in outcome.traces[0][1].detail
