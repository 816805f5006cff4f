"""Internationalised addresses in replies: what is sent for each, and which can't be sent at all."""

from __future__ import annotations

import email
from datetime import datetime, timezone
from email.policy import default as default_policy
from pathlib import Path

import pytest

from mailrules.message import MessageView
from mailrules.model import FlagTest, Reply, Rule
from mailrules.plan import Send
from mailrules.reply import Identity, SendPlanner, UnsendableAddress, build_reply, smtp_address

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "grusse-utf8-headers.eml"


@pytest.mark.parametrize("address, sent, smtputf8", [
    ("erin@customer.example", "erin@customer.example", False),
    ("joerg@bücher.example", "joerg@xn--bcher-kva.example", False),
    ("joerg@BÜCHER.example", "joerg@xn--bcher-kva.example", False),
    ("jürgen@bücher.example", "jürgen@bücher.example", True),
    ("jürgen@example.org", "jürgen@example.org", True),
])
def test_the_form_an_address_is_sent_in(address: str, sent: str, smtputf8: bool) -> None:
    form = smtp_address(address)
    assert (form.address, form.needs_smtputf8) == (sent, smtputf8)
    assert form.ascii_domain.isascii()


@pytest.mark.parametrize("address", ["snow@schnee☃mann.example", "nobody", "@bücher.example", "x@-bücher-.example"])
def test_an_address_without_a_sendable_form_says_why(address: str) -> None:
    with pytest.raises(UnsendableAddress):
        smtp_address(address)


def original() -> MessageView:
    return MessageView.from_bytes(FIXTURE.read_bytes())


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=default_policy)  # type: ignore[return-value]


def test_non_ascii_names_and_subjects_are_encoded_words_when_no_address_needs_smtputf8() -> None:
    raw = bytes(build_reply(sender="Büro Müller <buero@bücher.example>",
                            recipient="joerg@bücher.example", subject="Auto: GRÜSSE aus der Straße",
                            body="Liebe Grüße\n", original=original(), now=NOW))
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert headers.isascii() and b"=?utf-8?" in headers
    reply = parsed(raw)
    assert reply["From"] == "Büro Müller <buero@xn--bcher-kva.example>"
    assert reply["To"] == "joerg@xn--bcher-kva.example"
    assert reply["Subject"] == "Auto: GRÜSSE aus der Straße"
    assert reply["Message-ID"].endswith("@xn--bcher-kva.example>")


def test_a_non_ascii_local_part_makes_a_utf8_message() -> None:
    raw = bytes(build_reply(sender="support@example.com", recipient="jürgen@bücher.example",
                            subject="Auto: GRÜSSE", body="Hallo\n", original=original(), now=NOW))
    headers = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    assert "To: jürgen@bücher.example" in headers and "Subject: Auto: GRÜSSE" in headers
    assert "=?utf-8?" not in headers


def planner() -> tuple[SendPlanner, Send]:
    reply = Reply(body="Danke", require_recipient=False)
    rule = Rule("greetings", FlagTest("\\Seen", False), (reply,), source=str(FIXTURE))
    plan = SendPlanner(Identity("t", ("support@example.com",)), {"greetings": rule}, {"greetings": FIXTURE.parent},
                       NOW)
    return plan, Send("reply", 1, "greetings", None, reply=reply)


def test_the_plan_carries_the_sendable_form_of_the_address() -> None:
    plan, send = planner()
    planned = plan(send, original())
    assert planned.skip_reason is None and not planned.failed
    assert planned.recipient == "jürgen@bücher.example" and planned.envelope_from == "support@example.com"


def test_an_unsendable_sender_is_a_failed_reply_not_a_crash() -> None:
    plan, send = planner()
    raw = FIXTURE.read_bytes().replace("jürgen@bücher.example".encode(), "snow@schnee☃mann.example".encode())
    planned = plan(send, MessageView.from_bytes(raw))
    assert planned.failed and planned.payload is None
    assert planned.skip_reason is not None and "schnee☃mann.example" in planned.skip_reason


def test_explain_says_when_the_sender_cant_be_answered(tmp_path: Path) -> None:
    from tests.support.cli import run_cli

    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  - name: greetings\n    when: {subject: GRÜSSE}\n"
                     "    then:\n      - reply: {body: Danke}\n")
    message = tmp_path / "msg.eml"
    message.write_bytes(FIXTURE.read_bytes().replace("jürgen@bücher.example".encode(),
                                                     "snow@schnee☃mann.example".encode()))
    result = run_cli(["explain", str(rules), str(message)])
    assert result.code == 0, result.output
    assert "skipped reply (rule greetings): the reply can't be sent: the domain of snow@schnee☃mann.example" \
        in result.stdout
    message.write_bytes(FIXTURE.read_bytes())
    assert "replies:   1" in run_cli(["explain", str(rules), str(message)]).stdout
