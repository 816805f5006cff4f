"""Auto-replies and redirects, sent to a real SMTP server (aiosmtpd) from rules run on Dovecot."""

from __future__ import annotations

import email
from email.policy import default as default_policy
from pathlib import Path

import pytest

from tests.support.dovecot import Dovecot, User
from tests.support.smtp import RecordingSMTP
from tests.support.workspace import Workspace, make_message, message_ids, run_cli, snapshot, workspace

NOW = "2026-11-20T10:00:00Z"

RULES = """\
version: 1
rules:
  - name: support
    when: {recipient: {address: "support@example.com"}}
    then:
      - reply:
          subject: "Re: {{ message.subject }}"
          body: |
            Hello {{ message.from }},
            ticket received: {{ message.subject }}
          from: support@example.com
          once_per: 7d
          save_to: Sent
      - move: Tickets
  - name: invoices
    when: {subject: invoice}
    then:
      - redirect: accounting@example.com
"""


def smtp_settings(server: RecordingSMTP) -> str:
    return f"    smtp: {{host: {server.host}, port: {server.port}, tls: none}}\n"


@pytest.fixture
def smtp(smtp_server: RecordingSMTP) -> RecordingSMTP:
    smtp_server.clear()
    if not smtp_server.running:
        smtp_server.start()
    return smtp_server


def space_for(tmp_path: Path, user: User, smtp: RecordingSMTP, rules: str = RULES) -> Workspace:
    space = workspace(tmp_path, user, rules, extra=smtp_settings(smtp))
    accounts = space.accounts.read_text().replace(f"[{user.username}@example.com]",
                                                  f"[{user.username}@example.com, support@example.com]")
    space.accounts.write_text(accounts)
    return space


def ticket(subject: str, sender: str = "Erin <erin@customer.example>", **headers: str) -> bytes:
    return make_message(subject, sender, to="Support <support@example.com>", headers=headers or None)


def received(smtp: RecordingSMTP) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(item.data, policy=default_policy) for item in smtp.messages]  # type: ignore[misc]


def test_plan_shows_the_rendered_reply_and_sends_nothing(tmp_path: Path, dovecot: Dovecot, imap_user: User,
                                                         smtp: RecordingSMTP) -> None:
    dovecot.deliver(imap_user, ticket("Printer on fire"))
    result = space_for(tmp_path, imap_user, smtp).plan("--now", NOW)
    assert result.code == 0, result.output
    assert "reply to erin@customer.example" in result.stdout
    assert "ticket received: Printer on fire" in result.stdout
    assert smtp.messages == []


def test_run_answers_each_sender_once_per_period(tmp_path: Path, dovecot: Dovecot, imap_user: User,
                                                 smtp: RecordingSMTP) -> None:
    space = space_for(tmp_path, imap_user, smtp)
    dovecot.deliver(imap_user, ticket("First problem"))
    dovecot.deliver(imap_user, ticket("Second problem"))
    assert space.run("--now", NOW).code == 0
    assert len(smtp.messages) == 1
    dovecot.deliver(imap_user, ticket("Third problem"))
    assert space.run("--now", "2026-11-22T10:00:00Z").code == 0
    assert len(smtp.messages) == 1  # within 7 days of the first answer
    dovecot.deliver(imap_user, ticket("Fourth problem"))
    assert space.run("--now", "2026-11-28T10:00:00Z").code == 0
    assert len(smtp.messages) == 2
    assert len(snapshot(dovecot, imap_user)["Tickets"]) == 4


def test_the_reply_is_well_formed(tmp_path: Path, dovecot: Dovecot, imap_user: User, smtp: RecordingSMTP) -> None:
    dovecot.deliver(imap_user, ticket("Grüße: Drucker brennt", "Jörg Müller <joerg@customer.example>"))
    assert space_for(tmp_path, imap_user, smtp).run("--now", NOW).code == 0
    [reply] = received(smtp)
    assert smtp.messages[0].rcpt_tos == ("joerg@customer.example",)
    assert smtp.messages[0].mail_from == "support@example.com"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["Subject"] == "Re: Grüße: Drucker brennt"
    assert reply["In-Reply-To"] and reply["References"].endswith(reply["In-Reply-To"])
    assert "Jörg Müller" in reply.get_content()
    shot = snapshot(dovecot, imap_user)
    assert len(shot["Sent"]) == 1 and all("\\Seen" in flags for _, flags in shot["Sent"])
    assert all("\\Answered" in flags for _, flags in shot["Tickets"])


@pytest.mark.parametrize("headers, sender, reason", [
    ({"List-Id": "Users <users.lists.example>"}, "Erin <erin@customer.example>", "mailing list"),
    ({"Precedence": "bulk"}, "Erin <erin@customer.example>", "bulk"),
    ({"Auto-Submitted": "auto-replied"}, "Erin <erin@customer.example>", "automatic"),
    ({"X-Auto-Response-Suppress": "OOF, AutoReply"}, "Erin <erin@customer.example>", "no automatic replies"),
    ({"Return-Path": "<>"}, "Mail System <postmaster@customer.example>", "bounce"),
    ({}, "MAILER-DAEMON@customer.example", "mail system"),
    ({}, "owner-users@lists.example", "mail system"),
    ({}, "users-request@lists.example", "mail system"),
    ({}, "No Reply <no-reply@customer.example>", "mail system"),
    ({}, "Support <support@example.com>", "this account"),
])
def test_no_reply_to_lists_bounces_or_itself(tmp_path: Path, dovecot: Dovecot, imap_user: User,
                                             smtp: RecordingSMTP, headers: dict[str, str], sender: str,
                                             reason: str) -> None:
    dovecot.deliver(imap_user, ticket("Hello", sender, **headers))
    space = space_for(tmp_path, imap_user, smtp)
    plan = space.plan("--now", NOW)
    assert "skip reply" in plan.stdout and reason in plan.stdout
    assert space.run("--now", NOW).code == 0
    assert smtp.messages == []


def test_not_addressed_to_the_account_means_no_reply(tmp_path: Path, dovecot: Dovecot, imap_user: User,
                                                      smtp: RecordingSMTP) -> None:
    rules = RULES.replace('recipient: {address: "support@example.com"}', "subject: Hello")
    dovecot.deliver(imap_user, make_message("Hello", "Erin <erin@customer.example>", to="other@elsewhere.example"))
    space = space_for(tmp_path, imap_user, smtp, rules)
    assert "none of the account's addresses" in space.plan("--now", NOW).stdout
    shared = rules.replace("save_to: Sent", "save_to: Sent\n          require_recipient: false")
    space.write_rules(shared)
    assert space.run("--now", NOW).code == 0
    assert len(smtp.messages) == 1


@pytest.mark.parametrize("subject", [
    "Hi\r\nBcc: victim@example.org",
    "=?utf-8?q?Hi=0D=0ABcc=3A_victim=40example=2Eorg?=",
    "=?utf-8?b?SGkNCkJjYzogdmljdGltQGV4YW1wbGUub3Jn?=",
])
def test_header_injection_from_the_subject_is_neutralised(tmp_path: Path, dovecot: Dovecot, imap_user: User,
                                                          smtp: RecordingSMTP, subject: str) -> None:
    raw = ticket("placeholder").replace(b"Subject: placeholder", b"Subject: " + subject.encode())
    dovecot.deliver(imap_user, raw)
    assert space_for(tmp_path, imap_user, smtp).run("--now", NOW).code == 0
    [reply] = received(smtp)
    assert reply["Bcc"] is None
    assert smtp.messages[0].rcpt_tos == ("erin@customer.example",)
    assert "\n" not in reply["Subject"] and "\r" not in reply["Subject"]


def test_a_template_cannot_escape_the_sandbox(tmp_path: Path, dovecot: Dovecot, imap_user: User,
                                              smtp: RecordingSMTP) -> None:
    rules = RULES.replace("ticket received: {{ message.subject }}",
                          "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    dovecot.deliver(imap_user, ticket("Escape"))
    space = space_for(tmp_path, imap_user, smtp, rules)
    plan = space.plan("--now", NOW)
    assert "template failed" in plan.stdout and "unsafe" in plan.stdout.lower()
    space.run("--now", NOW)
    assert smtp.messages == []


def test_smtp_down_keeps_the_message_and_retries_next_run(tmp_path: Path, dovecot: Dovecot, imap_user: User,
                                                         smtp: RecordingSMTP) -> None:
    space = space_for(tmp_path, imap_user, smtp)
    dovecot.deliver(imap_user, ticket("Urgent"))
    smtp.stop()
    try:
        failed = space.run("--now", NOW)
    finally:
        smtp.start()
    assert failed.code == 1
    assert "reply for UID" in failed.output and "SMTP" in failed.output
    assert "Tickets" not in snapshot(dovecot, imap_user)  # not moved as if answered
    assert space.run("--now", NOW).code == 0
    assert len(smtp.messages) == 1
    assert len(snapshot(dovecot, imap_user)["Tickets"]) == 1


def test_smtp_refusing_the_login_is_a_clear_error(tmp_path: Path, dovecot: Dovecot, imap_user: User) -> None:
    with RecordingSMTP(credentials=("relay", "right")) as guarded:
        space = space_for(tmp_path, imap_user, guarded)
        accounts = space.accounts.read_text().replace(
            "tls: none}\n", "tls: none, username: relay, password_env: MAILRULES_SMTP_PASSWORD}\n")
        space.accounts.write_text(accounts)
        import os

        os.environ["MAILRULES_SMTP_PASSWORD"] = "wrong"
        dovecot.deliver(imap_user, ticket("Hello"))
        result = space.run("--now", NOW)
        assert result.code == 1
        assert "refused the login" in result.output and "wrong" not in result.output
        assert guarded.messages == []


def test_redirect_resends_the_original_once(tmp_path: Path, dovecot: Dovecot, imap_user: User,
                                            smtp: RecordingSMTP) -> None:
    original = make_message("Invoice 7", "Billing <billing@shop.example>")
    dovecot.deliver(imap_user, original)
    space = space_for(tmp_path, imap_user, smtp)
    assert space.run("--now", NOW).code == 0
    assert space.run("--now", NOW).code == 0
    [sent] = smtp.messages
    assert sent.rcpt_tos == ("accounting@example.com",)
    assert sent.data.replace(b"\r\n", b"\n").endswith(original.replace(b"\r\n", b"\n"))
    resent = email.message_from_bytes(sent.data, policy=default_policy)
    assert resent["Resent-To"] == "accounting@example.com"


def test_a_failed_send_is_retried_by_a_new_only_run(tmp_path: Path, dovecot: Dovecot, imap_user: User,
                                                     smtp: RecordingSMTP) -> None:
    space = space_for(tmp_path, imap_user, smtp)
    dovecot.deliver(imap_user, ticket("Urgent"))
    smtp.stop()
    try:
        assert space.run("--now", NOW, "--new-only").code == 1
    finally:
        smtp.start()
    assert space.run("--now", NOW, "--new-only").code == 0
    assert len(smtp.messages) == 1
    assert len(snapshot(dovecot, imap_user)["Tickets"]) == 1


TEMPLATE_RULES = RULES.replace("""          body: |
            Hello {{ message.from }},
            ticket received: {{ message.subject }}
""", """          template: templates/ticket.txt.j2
""")


def test_a_template_reply_works_from_any_working_directory(tmp_path: Path, dovecot: Dovecot, imap_user: User,
                                                           smtp: RecordingSMTP,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    space = space_for(tmp_path / "mail", imap_user, smtp, TEMPLATE_RULES)
    (space.root / "templates").mkdir()
    (space.root / "templates" / "ticket.txt.j2").write_text("ticket received: {{ message.subject }}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    options = ["--accounts", str(space.accounts), "--account", "t", "--state", str(space.state), "--now", NOW]
    # As a user tries it by hand, then as the same rules run from cron: the answers must not differ,
    # whatever the cache kept from the earlier run.
    for number, (folder, rules) in enumerate([(space.root, "rules.yaml"), (space.root, str(space.rules)),
                                              (elsewhere, str(space.rules))], start=1):
        monkeypatch.chdir(folder)
        dovecot.deliver(imap_user, ticket(f"Problem {number}", f"Erin <erin{number}@customer.example>"))
        result = run_cli(["run", rules, *options])
        assert result.code == 0, result.output
        assert len(smtp.messages) == number, result.output
        assert received(smtp)[-1].get_content().splitlines() == [f"ticket received: Problem {number}"]
    monkeypatch.chdir(space.root)
    (space.root / "msg.eml").write_bytes(ticket("By hand"))
    explained = run_cli(["explain", "rules.yaml", "msg.eml", "--address", "support@example.com"])
    assert explained.code == 0, explained.output
    assert "ticket received: By hand" in explained.stdout and "template failed" not in explained.stdout


def test_a_reply_that_fails_is_reported_and_run_exits_1(tmp_path: Path, dovecot: Dovecot, imap_user: User,
                                                        smtp: RecordingSMTP) -> None:
    rules = RULES.replace("ticket received: {{ message.subject }}", 'ticket {{ message.headers["X-Ticket"] }}')
    space = space_for(tmp_path, imap_user, smtp, rules)
    dovecot.deliver(imap_user, ticket("Without a number"))
    dovecot.deliver(imap_user, ticket("With a number", "Finn <finn@customer.example>", **{"X-Ticket": "T-7"}))
    result = space.run("--now", NOW)
    assert result.code == 1, result.output
    assert "failed: reply for UID 1 (rule support): the template failed" in result.output
    [sent] = received(smtp)
    assert sent.get_content().splitlines() == ["Hello Finn <finn@customer.example>,", "ticket T-7"]
    # The failed reply holds nothing up: both messages are filed.
    assert len(snapshot(dovecot, imap_user)["Tickets"]) == 2
    history = run_cli(["history", "--state", str(space.state)])
    assert "partial" in history.stdout


GREETINGS_RULES = """\
version: 1
rules:
  - name: greetings
    when: {subject: GRÜSSE}
    then:
      - reply:
          from: "Büro Müller <support@example.com>"
          body: "Danke, {{ message.from }}!"
          require_recipient: false
      - move: Freunde
"""
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def greetings(tmp_path: Path, dovecot: Dovecot, imap_user: User, server: RecordingSMTP) -> Workspace:
    """The German fixture (jürgen@bücher.example) and an ASCII sender, in the same folder."""
    dovecot.deliver(imap_user, (FIXTURES / "grusse-utf8-headers.eml").read_bytes())
    dovecot.deliver(imap_user, make_message("GRÜSSE von Erin", "Erin <erin@customer.example>"))
    return space_for(tmp_path, imap_user, server, GREETINGS_RULES)


def test_a_reply_to_a_non_ascii_address_uses_smtputf8(tmp_path: Path, dovecot: Dovecot, imap_user: User) -> None:
    with RecordingSMTP(smtputf8=True) as server:
        result = greetings(tmp_path, dovecot, imap_user, server).run("--now", NOW)
        assert result.code == 0, result.output
        first, second = server.messages
    assert first.rcpt_tos == ("jürgen@bücher.example",) and "SMTPUTF8" in first.mail_options
    reply = email.message_from_bytes(first.data, policy=default_policy)
    assert reply["To"] == "jürgen@bücher.example"
    assert reply["Subject"] == "Auto: GRÜSSE aus der Straße"
    assert reply["From"] == "Büro Müller <support@example.com>"
    assert reply.get_content().strip() == "Danke, Jürgen Müller <jürgen@bücher.example>!"
    # An ASCII address needs no SMTPUTF8, and its headers stay ASCII (RFC 2047).
    assert second.rcpt_tos == ("erin@customer.example",) and "SMTPUTF8" not in second.mail_options
    assert second.data.split(b"\r\n\r\n")[0].isascii()
    assert len(snapshot(dovecot, imap_user)["Freunde"]) == 2


def test_without_smtputf8_a_non_ascii_local_part_is_a_skipped_reply(tmp_path: Path, dovecot: Dovecot,
                                                                   imap_user: User, smtp: RecordingSMTP) -> None:
    space = greetings(tmp_path, dovecot, imap_user, smtp)
    result = space.run("--now", NOW)
    assert result.code == 1, result.output
    assert "internal error" not in result.output
    assert "failed: reply for UID 1 (rule greetings): the address jürgen@bücher.example" in result.stdout
    assert "SMTPUTF8" in result.stdout
    [sent] = smtp.messages
    assert sent.rcpt_tos == ("erin@customer.example",)
    # Nothing is held up: both messages are filed, the unanswerable one too.
    shot = snapshot(dovecot, imap_user)
    assert len(shot["Freunde"]) == 2 and "INBOX" not in shot
    assert "partial" in run_cli(["history", "--state", str(space.state)]).stdout
    assert space.run("--now", NOW).code == 0  # reported once; nothing left to do


def test_without_smtputf8_a_non_ascii_domain_is_sent_as_idna(tmp_path: Path, dovecot: Dovecot, imap_user: User,
                                                             smtp: RecordingSMTP) -> None:
    dovecot.deliver(imap_user, make_message("Grüsse", "Jörg Bücher <joerg@bücher.example>"))
    result = space_for(tmp_path, imap_user, smtp, GREETINGS_RULES).run("--now", NOW)
    assert result.code == 0, result.output
    [sent] = smtp.messages
    assert sent.rcpt_tos == ("joerg@xn--bcher-kva.example",) and "SMTPUTF8" not in sent.mail_options
    headers = sent.data.split(b"\r\n\r\n")[0]
    assert headers.isascii() and b"=?utf-8?" in headers
    reply = email.message_from_bytes(sent.data, policy=default_policy)
    assert reply["To"] == "joerg@xn--bcher-kva.example"
    assert reply["From"] == "Büro Müller <support@example.com>"
    assert reply["Subject"] == "Auto: Grüsse"


def test_an_address_that_cant_be_written_is_a_skipped_reply(tmp_path: Path, dovecot: Dovecot, imap_user: User,
                                                            smtp: RecordingSMTP) -> None:
    dovecot.deliver(imap_user, make_message("Grüsse", "Snow <snow@schnee☃mann.example>"))
    space = space_for(tmp_path, imap_user, smtp, GREETINGS_RULES)
    plan = space.plan("--now", NOW)
    assert plan.code == 0 and "the reply can't be sent" in plan.stdout and "schnee☃mann" in plan.stdout
    result = space.run("--now", NOW)
    assert result.code == 1, result.output
    assert "failed: reply for UID 1 (rule greetings): the reply can't be sent" in result.stdout
    assert smtp.messages == []
    assert len(snapshot(dovecot, imap_user)["Freunde"]) == 1


def test_a_recipient_refused_for_good_is_skipped_and_one_refused_for_now_is_retried(
        tmp_path: Path, dovecot: Dovecot, imap_user: User, smtp: RecordingSMTP) -> None:
    smtp.refusals.update({"gone@customer.example": "550 5.1.1 no such user",
                          "busy@customer.example": "450 4.2.1 try later"})
    dovecot.deliver(imap_user, ticket("Anyone there?", "Gone <gone@customer.example>"))
    dovecot.deliver(imap_user, ticket("Hello?", "Busy <busy@customer.example>"))
    space = space_for(tmp_path, imap_user, smtp)
    result = space.run("--now", NOW)
    assert result.code == 1, result.output
    assert "refused gone@customer.example for good: 550 5.1.1 no such user" in result.stdout
    assert "refused busy@customer.example for now: 450 4.2.1 try later" in result.stdout
    shot = message_ids(snapshot(dovecot, imap_user))
    assert len(shot["Tickets"]) == 1 and len(shot["INBOX"]) == 1  # only the retryable one waits
    smtp.refusals.clear()
    assert space.run("--now", NOW).code == 0
    [sent] = smtp.messages
    assert sent.rcpt_tos == ("busy@customer.example",)
    assert len(snapshot(dovecot, imap_user)["Tickets"]) == 2


@pytest.mark.parametrize("smtputf8", [False, True])
def test_redirecting_an_original_with_utf8_headers(tmp_path: Path, dovecot: Dovecot, imap_user: User,
                                                   smtputf8: bool) -> None:
    rules = "version: 1\nrules:\n  - name: forward\n    when: {subject: GRÜSSE}\n    then:\n" \
            "      - redirect: accounting@example.com\n"
    original = (FIXTURES / "grusse-utf8-headers.eml").read_bytes()
    dovecot.deliver(imap_user, original)
    with RecordingSMTP(smtputf8=smtputf8) as server:
        result = space_for(tmp_path, imap_user, server, rules).run("--now", NOW)
        assert result.code == 0, result.output
        [sent] = server.messages
    assert sent.rcpt_tos == ("accounting@example.com",)
    # Declared where the server can take it; sent as before to one that predates SMTPUTF8.
    assert ("SMTPUTF8" in sent.mail_options) is smtputf8
    assert sent.data.replace(b"\r\n", b"\n").endswith(original.replace(b"\r\n", b"\n"))
