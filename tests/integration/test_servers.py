"""The behaviour that matters, on every IMAP server of the suite: Dovecot, and Cyrus in Debian's
layout (``INBOX.`` prefix, ``.`` separator) and in the upstream one (no prefix, ``/``).

Rule files name folders the same way everywhere; the tests read each server back
through :class:`tests.support.servers.Account`, which translates its native names, so
one assertion covers all three.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from imapclient.exceptions import IMAPClientError

from mailrules.backends.base import FetchNeeds
from mailrules.backends.imap import ImapMailbox
from mailrules.match import EvalContext, matches
from mailrules.model import Condition
from mailrules.search import to_search
from mailrules.query import EVERYTHING
from tests.integration.test_maildir_dovecot import _give_to_mail_user as give_to_mail_user
from tests.integration.test_plan_run import RULES
from tests.integration.test_pushdown import conditions, undecodable
from tests.support.cyrus import Cyrus
from tests.support.dovecot import Dovecot
from tests.support.servers import DOVECOT_NAMING, Account, ServerUnderTest, cyrus_accounts, dovecot_accounts
from tests.support.smtp import RecordingSMTP
from tests.support.workspace import Snapshot, Workspace, make_message, run_cli, workspace

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-11-20T10:00:00Z"
PUSHDOWN_NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)


Delivery = tuple[bytes, tuple[str, ...], datetime]  # raw message, flags, arrival


def seed(account: Account) -> None:
    """Nine messages over APPEND (the one way into every server), with flags and arrival dates."""
    old = datetime(2026, 9, 1, tzinfo=timezone.utc)
    recent = datetime(2026, 11, 19, tzinfo=timezone.utc)
    bulk = {"Precedence": "bulk"}
    deliveries: list[Delivery] = [
        (make_message("[acme/app] PR #1", "GitHub <notifications@github.com>"), (), recent),
        (make_message("[acme/app] PR #2", "GitHub <noreply@security.github.com>"), ("\\Seen",), recent),
        (make_message("Your account", "Fake <support@evilgithub.com>"), (), recent),
        (make_message("Invoice 42", "Billing <billing@shop.example>"), (), recent),
        (make_message("Invoices overview", "Billing <billing@shop.example>"), (), recent),
        (make_message("Weekly news", "News <news@letter.example>", headers=bulk), (), old),
        (make_message("Daily news", "News <news@letter.example>", headers=bulk), (), recent),
        (make_message("Viele Grüße aus Köln", "Oma <oma@familie.example>"), (), recent),
        (make_message("Lunch?", "Bob <bob@example.net>"), (), recent),
    ]
    account.append_all(deliveries)


@pytest.fixture
def account(imap_server: ServerUnderTest) -> Account:
    seeded = imap_server.account()
    seed(seeded)
    return seeded


@pytest.fixture
def space(tmp_path: Path, account: Account) -> Workspace:
    return workspace(tmp_path, account, RULES)  # type: ignore[arg-type]


def ids(account: Account) -> dict[str, set[str]]:
    return {folder: {mid for mid, _ in content} for folder, content in account.snapshot().items()}


# ---------------------------------------------------------------- plan and run


def test_plan_changes_nothing_not_even_seen(space: Workspace, account: Account) -> None:
    before = account.snapshot()
    account.clear_commands()
    result = space.plan("--now", NOW)
    assert result.code == 0, result.output
    assert "Would change" in result.stdout
    sent = set(account.commands())
    assert "EXAMINE" in sent and not {"SELECT", "STORE", "UID STORE", "COPY", "UID COPY", "MOVE", "UID MOVE",
                                      "CREATE", "APPEND", "EXPUNGE", "UID EXPUNGE"} & sent
    assert account.snapshot() == before


def test_run_does_exactly_what_plan_showed(space: Workspace, account: Account) -> None:
    plan = json.loads(space.plan("--now", NOW, "--json").stdout)
    inbox = next(folder for folder in plan["folders"] if folder["folder"] == "INBOX")
    planned = {account.portable(move["destination"]): len(move["uids"]) for move in inbox["moves"]}
    assert planned == {"Notifications/GitHub": 2, "Newsletters": 1, "Privat/Grüße": 1}
    result = space.run("--now", NOW, "--yes")
    assert result.code == 0, result.output
    after = ids(account)
    assert {folder: len(after.get(folder, ())) for folder in planned} == planned
    assert len(after["Finance"]) == sum(len(copy["uids"]) for copy in inbox["copies"]) == 1
    assert len(after["INBOX"]) == 9 - 4 - 1  # moved out, deleted; copies stay
    shot = account.snapshot()
    assert all("\\Seen" in flags for _, flags in shot["Notifications/GitHub"])
    [(_, finance_flags)] = shot["Finance"].keys()
    assert {"\\Flagged", "$Invoice"} <= set(finance_flags)


def test_a_second_run_plans_nothing_and_changes_nothing(space: Workspace, account: Account) -> None:
    first = space.run("--now", NOW)
    assert first.code == 0, first.output
    after_first = account.snapshot()
    second = space.plan("--now", NOW)
    assert second.code == 0, second.output
    assert "Nothing to do." in second.stdout
    assert space.run("--now", NOW).code == 0
    assert account.snapshot() == after_first


def test_a_message_another_client_marked_deleted_survives(space: Workspace, account: Account) -> None:
    with account.client() as other:
        other.select_folder("INBOX")
        other.add_flags(other.search(["SUBJECT", "Lunch?"]), [b"\\Deleted"])
    result = space.run("--now", NOW)
    assert result.code == 0, result.output
    inbox = account.snapshot()["INBOX"]
    assert sum("\\Deleted" in flags for _, flags in inbox) == 1  # still there, still flagged by the other client


def test_a_server_without_move_gets_the_same_result(tmp_path: Path, imap_server: ServerUnderTest) -> None:
    results = []
    for name, without in (("with-move", ()), ("without-move", ("MOVE",))):
        account = imap_server.account(without=without)
        assert ("MOVE" in account.capabilities()) == (not without)
        seed(account)
        result = workspace(tmp_path / name, account, RULES).run("--now", NOW)  # type: ignore[arg-type]
        assert result.code == 0, result.output
        results.append(account.snapshot())
        if without:
            assert "UID MOVE" not in account.commands() and "MOVE" not in account.commands()
    assert results[0] == results[1]


def test_a_server_without_uidplus_copies_once_and_leaves_originals_flagged(tmp_path: Path,
                                                                          imap_server: ServerUnderTest) -> None:
    account = imap_server.account(without=("MOVE", "UIDPLUS"))
    assert not {"MOVE", "UIDPLUS"} & set(account.capabilities())
    seed(account)
    result = workspace(tmp_path, account, RULES).run("--now", NOW)  # type: ignore[arg-type]
    assert result.code == 0, result.output
    assert "UIDPLUS" in result.stdout
    commands = account.commands()
    assert "EXPUNGE" not in commands and "UID EXPUNGE" not in commands and "UID MOVE" not in commands
    shot = account.snapshot()
    assert sum("\\Deleted" in flags for _, flags in shot["INBOX"]) == 5  # 4 moved (copied) + 1 deleted
    for folder, expected in {"Notifications/GitHub": 2, "Newsletters": 1, "Privat/Grüße": 1, "Finance": 1}.items():
        assert sum(shot[folder].values()) == expected, folder  # each copied exactly once


def test_a_server_without_uidplus_shows_no_duplicate_after_three_runs(tmp_path: Path,
                                                                      imap_server: ServerUnderTest) -> None:
    account = imap_server.account(without=("MOVE", "UIDPLUS"))
    seed(account)
    space = workspace(tmp_path, account, RULES)  # type: ignore[arg-type]
    first = space.run("--now", NOW)
    assert first.code == 0, first.output
    assert "copied and left flagged" in first.stdout and "moved" not in first.stdout
    after_first = account.snapshot()
    for _ in range(2):
        again = space.run("--now", NOW)
        assert again.code == 0, again.output
    assert account.snapshot() == after_first
    assert all(count == 1 for content in after_first.values() for count in content.values())


def test_non_ascii_folders_are_modified_utf7_on_the_wire(space: Workspace, account: Account) -> None:
    result = space.run("--now", NOW)
    assert result.code == 0, result.output
    assert len(account.snapshot()["Privat/Grüße"]) == 1  # GRÜSSE found Grüße: Unicode casefold
    with account.client() as imap:
        imap.folder_encode = False
        names = {name for _, _, name in imap.list_folders()}
    assert account.native("Privat/Gr&APwA3w-e").encode() in names


# ---------------------------------------------------------------- the bundled rule files


MAILDIR_FLAGS = {"S": "\\Seen", "R": "\\Answered", "F": "\\Flagged", "T": "\\Deleted", "D": "\\Draft"}


def benchmark_mailbox() -> tuple[list[Delivery], tuple[str, ...]]:
    """The benchmark's generated mailbox (100 messages) and the folders it starts with."""
    from benchmarks.mailgen import EXTRA_FOLDERS, generate
    from benchmarks.reference import destinations

    messages = generate(100, seed=1, now=PUSHDOWN_NOW)
    return ([(m.raw, tuple(MAILDIR_FLAGS[c] for c in m.flags), m.arrived) for m in messages],
            (*EXTRA_FOLDERS, *destinations()))


def sample_mailbox() -> tuple[list[Delivery], tuple[str, ...]]:
    """The bundled sample Maildir: its file names carry the arrival time and the flags."""
    deliveries = []
    for path in sorted((ROOT / "examples" / "Maildir" / "cur").iterdir()):
        stamp, _, flags = path.name.partition(":2,")
        when = datetime.fromtimestamp(int(stamp.split(".")[0]), tz=timezone.utc)
        deliveries.append((path.read_bytes(), tuple(MAILDIR_FLAGS[c] for c in flags), when))
    return deliveries, ()


def bundled_rules(name: str) -> str:
    if name == "benchmarks":
        return (ROOT / "benchmarks" / "rules.yaml").read_text()
    # The workspace's account is called "t"; the rules name their own.
    return (ROOT / "rules.example.yaml").read_text().replace("\naccount: personal\n", "\naccount: t\n")


def end_state(account: Account, rules: str, mailbox: tuple[list[Delivery], tuple[str, ...]], root: Path,
              smtp: RecordingSMTP) -> Snapshot:
    deliveries, folders = mailbox
    for folder in folders:
        account.create_folder(folder)
    account.append_all(deliveries)
    # What rules.example.yaml includes and renders, laid out beside the rule file as in the repository.
    shutil.copytree(ROOT / "examples", root / "examples", ignore=shutil.ignore_patterns("Maildir"))
    space = workspace(root, account, rules,  # type: ignore[arg-type]
                      extra=f"    smtp: {{host: {smtp.host}, port: {smtp.port}, tls: none}}\n")
    result = space.run("--now", NOW, "--yes")
    assert result.code == 0, result.output
    return account.snapshot()


@pytest.mark.parametrize("rule_file", ["benchmarks", "example"])
@pytest.mark.parametrize("imap_server", [
    pytest.param("cyrus-default", marks=pytest.mark.cyrus),
    pytest.param("cyrus-alt", marks=pytest.mark.cyrus),
], indirect=True)
def test_the_bundled_rule_files_end_as_on_dovecot(rule_file: str, imap_server: ServerUnderTest, dovecot: Dovecot,
                                                  smtp_server: RecordingSMTP, tmp_path: Path) -> None:
    mailbox = benchmark_mailbox() if rule_file == "benchmarks" else sample_mailbox()
    rules = bundled_rules(rule_file)
    reference = Account("dovecot", dovecot, dovecot.add_user(), DOVECOT_NAMING)
    expected = end_state(reference, rules, mailbox, tmp_path / "dovecot", smtp_server)
    assert len(expected) >= 5, expected  # the rules filed mail into several folders
    assert end_state(imap_server.account(), rules, mailbox, tmp_path / imap_server.kind,
                     smtp_server) == expected


@pytest.mark.parametrize("rule_file", ["benchmarks", "example"])
def test_the_bundled_rule_files_end_on_a_maildir_as_on_dovecot(rule_file: str, dovecot: Dovecot,
                                                               smtp_server: RecordingSMTP, tmp_path: Path) -> None:
    """The Maildir backend works on a Dovecot user's own Maildir; Dovecot's IMAP then reads the end state."""
    mailbox = benchmark_mailbox() if rule_file == "benchmarks" else sample_mailbox()
    rules = bundled_rules(rule_file)
    reference = Account("dovecot", dovecot, dovecot.add_user(), DOVECOT_NAMING)
    expected = end_state(reference, rules, mailbox, tmp_path / "dovecot", smtp_server)
    assert len(expected) >= 5, expected  # the rules filed mail into several folders
    served = Account("maildir", dovecot, dovecot.add_user(), DOVECOT_NAMING)
    deliveries, folders = mailbox
    for folder in folders:
        served.create_folder(folder)
    served.append_all(deliveries)
    root = tmp_path / "maildir"
    shutil.copytree(ROOT / "examples", root / "examples", ignore=shutil.ignore_patterns("Maildir"))
    (root / "rules.yaml").write_text(rules)
    (root / "accounts.yaml").write_text(
        f"accounts:\n  t:\n    maildir: {served.user.maildir}\n    addresses: [{served.user.username}@example.com]\n"
        f"    smtp: {{host: {smtp_server.host}, port: {smtp_server.port}, tls: none}}\n")
    result = run_cli(["run", str(root / "rules.yaml"), "--accounts", str(root / "accounts.yaml"),
                      "--state", str(root / "state.sqlite3"), "--now", NOW, "--yes"])
    assert result.code == 0, result.output
    give_to_mail_user(served.user.maildir)
    assert served.snapshot() == expected


# ---------------------------------------------------------------- what Cyrus refuses or rewrites


@pytest.mark.parametrize("imap_server", [pytest.param("cyrus-default", marks=pytest.mark.cyrus),
                                         pytest.param("cyrus-alt", marks=pytest.mark.cyrus)], indirect=True)
def test_cyrus_refuses_nul_bytes_and_invalid_headers_and_munges_8bit(imap_server: ServerUnderTest) -> None:
    account = imap_server.account()
    refusals = {"nul-byte.eml": "Message contains NUL characters",
                "hostile/odd-header-lines.eml": "Message contains invalid header"}
    for name, message in refusals.items():
        with pytest.raises(IMAPClientError, match=message):
            account.append((ROOT / "tests" / "fixtures" / name).read_bytes())
    account.append((ROOT / "tests" / "fixtures" / "grusse-utf8-headers.eml").read_bytes())
    with account.client() as imap:
        imap.select_folder("INBOX", readonly=True)
        [data] = imap.fetch(imap.search(), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]).values()
    # munge8bit: each raw 8-bit byte of a header becomes "X" (Ü is two bytes in UTF-8).
    assert data[b"BODY[HEADER.FIELDS (SUBJECT)]"].strip() == b"Subject: GRXXSSE aus der StraXXe"


# ---------------------------------------------------------------- pushdown


# The corpus each server stores; what a server refuses is named here, never skipped quietly.
REFUSED = {"dovecot": set(), "cyrus-default": {"nul-byte.eml"}, "cyrus-alt": {"nul-byte.eml"}}


@pytest.fixture(scope="module", params=[
    pytest.param("dovecot", marks=pytest.mark.dovecot),
    pytest.param("cyrus-default", marks=pytest.mark.cyrus),
    pytest.param("cyrus-alt", marks=pytest.mark.cyrus),
])
def corpus(request: pytest.FixtureRequest) -> Account:
    """The fixture corpus and the sample Maildir in one account's INBOX, per server."""
    kind = request.param
    if kind == "dovecot":
        server = request.getfixturevalue("dovecot")
        account = dovecot_accounts(server, lambda **_: server)(())
    else:
        cyrus: Cyrus = request.getfixturevalue("cyrus_default" if kind == "cyrus-default" else "cyrus_alt")
        account = cyrus_accounts(cyrus)(())
    sources = sorted((ROOT / "tests" / "fixtures").glob("*.eml"))
    sources += sorted((ROOT / "examples" / "Maildir" / "cur").glob("*.sample*"))
    refused = set()
    with account.client() as imap:
        for path in sources:
            when = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
            flags = ("\\Seen",) if path.name.endswith(",S") else ()
            try:
                imap.append("INBOX", path.read_bytes(), flags=flags, msg_time=when)
            except IMAPClientError:
                refused.add(path.name)
    assert refused == REFUSED[kind]
    return account


@pytest.fixture(scope="module")
def corpus_mailbox(corpus: Account) -> Iterator[tuple[ImapMailbox, dict]]:  # type: ignore[type-arg]
    with ImapMailbox(corpus.host, corpus.port, tls="none", username=corpus.username,
                     password=corpus.password) as box:
        box.open_folder("INBOX", readonly=True)
        needs = FetchNeeds(all_headers=True, body=True, structure=True)
        yield box, dict(box.fetch(box.search(EVERYTHING), needs))


@pytest.mark.parametrize("name, condition", conditions(), ids=[name for name, _ in conditions()])
def test_the_server_search_contains_every_local_match(name: str, condition: Condition, corpus_mailbox) -> None:  # type: ignore[no-untyped-def]
    box, messages = corpus_mailbox
    query = to_search(condition, now=PUSHDOWN_NOW)
    found = set(box.search(query))
    local = {uid for uid, message in messages.items() if matches(condition, message, EvalContext(now=PUSHDOWN_NOW))}
    missed = {uid for uid in local - found if not undecodable(messages[uid])}
    assert not missed, f"SEARCH {query.criteria} missed UIDs {sorted(missed)}"
    if query.exact:
        assert found == local, f"exact SEARCH {query.criteria} returned non-matches {sorted(found - local)}"
