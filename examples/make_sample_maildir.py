#!/usr/bin/env python3
"""Write the sample Maildir that the README's first command runs the example rules on.

Deterministic: the same messages, names and dates every time, so the bundled copy in
examples/Maildir can be regenerated and reviewed.  File mtimes are set to the arrival
dates (Maildir's INTERNALDATE); git does not keep mtimes, so run this script again after
a checkout to make the age-based rules see the intended ages.

    python examples/make_sample_maildir.py [TARGET]     (default: examples/Maildir)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

ANCHOR = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)  # "now" of the sample


def message(sender: str, to: str, subject: str, body: str, *, age_days: float, headers: dict[str, str] | None = None,
            html: str | None = None, attachment: tuple[str, bytes] | None = None) -> tuple[EmailMessage, datetime]:
    arrived = ANCHOR - timedelta(days=age_days)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(arrived - timedelta(minutes=2))
    digest = hashlib.sha256(f"{sender}|{subject}|{age_days}".encode()).hexdigest()[:16]
    msg["Message-ID"] = f"<{digest}@sample.example>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if html:
        msg.add_alternative(html, subtype="html")
    if attachment:
        name, data = attachment
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    if msg.is_multipart():
        msg.set_boundary(f"=_sample_{digest}")  # the stdlib picks a random one; the sample must not change
    received = f"from mx.example.org by mail.example.org; {format_datetime(arrived)}"
    msg._headers.insert(0, ("Received", received))  # topmost, as an MTA prepends it
    return msg, arrived


ME = "Alice Example <alice@example.com>"


def sample_messages() -> list[tuple[str, str, EmailMessage, datetime]]:
    """(folder, flags, message, arrival) for every sample message."""
    gh = {"List-Id": "acme/widgets <widgets.acme.github.com>", "X-GitHub-Reason": "review_requested",
          "List-Unsubscribe": "<mailto:unsub@reply.github.com>"}
    pydev = {"List-Id": "Python core developers <python-dev.python.org>", "Precedence": "list",
             "List-Post": "<mailto:python-dev@python.org>"}
    news = {"Precedence": "bulk", "List-Unsubscribe": "<https://news.example.net/u/123>"}
    out: list[tuple[str, str, EmailMessage, datetime]] = []

    def add(folder: str, flags: str, pair: tuple[EmailMessage, datetime]) -> None:
        out.append((folder, flags, pair[0], pair[1]))

    for n, (title, age) in enumerate([("Fix flaky test in parser", 0.2), ("Add MOVE support", 1.5),
                                      ("Release 2.0 checklist", 3), ("Bump dependencies", 12)]):
        add("INBOX", "S" if n % 2 else "", message(
            "GitHub <notifications@github.com>", ME, f"[acme/widgets] {title} (PR #{40 + n})",
            f"@bob requested your review on PR #{40 + n}.\n\nView it on GitHub.", age_days=age, headers=gh))
    add("INBOX", "", message("GitHub Security <noreply@security.github.com>", ME,
                             "[GitHub] A new SSH key was added to your account", "If this wasn't you, act now.",
                             age_days=0.5))
    add("INBOX", "", message("Mallory <support@evilgithub.com>", ME, "Your GitHub account is suspended",
                             "Click here to verify.", age_days=0.7))
    for n, (title, age) in enumerate([("PEP 999: Frozen dataclasses everywhere", 2), ("Re: PEP 999", 1.2),
                                      ("Python 3.15.0a2 released", 40)]):
        add("INBOX", "", message("Guido <guido@python.org>", "python-dev@python.org", title,
                                 "Discussion continues on Discourse.", age_days=age, headers=pydev))
    add("INBOX", "", message("Weekly Digest <digest@news.example.net>", ME, "This week: 10 tips for your inbox",
                             "Tip 1: filter it.", age_days=4, headers=news,
                             html="<html><head><style>p{}</style></head><body><p>Tip 1: <b>filter</b> it.</p></body></html>"))
    add("INBOX", "S", message("Shop <newsletter@shop.example>", ME, "=?utf-8?q?Gro=C3=9Fe_Rabatte_f=C3=BCr_Sie?=",
                              "Sale!", age_days=9, headers=news))
    add("INBOX", "", message("ACME Billing <billing@acme-hosting.example>", ME, "Invoice 2026-1142 for November",
                             "Your invoice is attached.", age_days=1, attachment=("invoice-2026-1142.pdf", b"%PDF-1.4 sample")))
    add("INBOX", "", message("Stadtwerke <rechnung@stadtwerke.example>", ME, "Ihre Rechnung Nr. 7781 (Grüße aus Köln)",
                             "Die Rechnung finden Sie im Anhang.", age_days=6,
                             attachment=("Rechnung-7781.pdf", b"%PDF-1.4 sample")))
    add("INBOX", "", message("Spammer <win@lottery.example>", ME, "You WON!!!", "Claim your prize.", age_days=0.1,
                             headers={"X-Spam-Flag": "YES", "X-Spam-Score": "12.5"}))
    add("INBOX", "", message("Build Bot <bot@ci.example.com>", "dev-team@example.com", "[CI] main: build #812 failed",
                             "Tests failed: test_parser.", age_days=0.05, headers={"X-CI-Status": "failed"}))
    add("INBOX", "S", message("Build Bot <bot@ci.example.com>", "dev-team@example.com", "[CI] main: build #790 passed",
                              "All green.", age_days=20, headers={"X-CI-Status": "passed"}))
    add("INBOX", "", message("Pager <pager@alerts.example.com>", ME, "[PAGE] db-1 disk 95% full",
                             "Acknowledge within 15 minutes.", age_days=0.02))
    add("INBOX", "", message("Bob Builder <bob@partner.example>", ME, "Lunch on Friday?", "Are you free?",
                             age_days=0.3))
    add("INBOX", "S", message("Carol <carol@example.com>", ME, "Photos from the trip", "See attached.",
                              age_days=400, attachment=("photos.pdf", b"%PDF-1.4 " + b"x" * 300_000)))
    add("INBOX", "", message("Mail Delivery System <MAILER-DAEMON@mail.example.org>", ME,
                             "Undelivered Mail Returned to Sender", "This is the mail system.", age_days=2,
                             headers={"Auto-Submitted": "auto-replied"}))
    add("INBOX", "", message("Dave <dave@partner.example>", ME, "Out of office: Re: Contract",
                             "I am away until Monday.", age_days=1,
                             headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"}))
    add("INBOX", "S", message("Old Service <notify@legacy.example>", ME, "Your weekly report", "Nothing happened.",
                              age_days=200, headers={"Auto-Submitted": "auto-generated"}))
    add("INBOX", "", message("Mum <mum@example.org>", ME, "Sunday dinner", "Come at six.", age_days=0.4))
    add("INBOX", "S", message("Parcel Service <noreply@parcels.example>", ME, "Your order has shipped",
                              "Tracking number 123.", age_days=45))
    add("INBOX", "", message("Parcel Service <noreply@parcels.example>", ME, "Out for delivery today",
                             "Tracking number 456.", age_days=0.6))
    add("INBOX", "", message("LWN <lwn@lwn.net>", ME, "LWN.net Weekly Edition for November 19", "This week...",
                             age_days=1.1, headers={"List-Id": "LWN weekly <weekly.lwn.net>"}))
    add("INBOX", "", message("Team list <team@example.com>", "team@example.com", "Offsite agenda", "Draft attached.",
                             age_days=2.5, headers={"List-Id": "Team <team.example.com>"}))
    add("INBOX", "", message("Erin Customer <erin@customer.example>", "Support <support@example.com>",
                             "Printer driver crashes on start", "Version 4.2 crashes when I print.", age_days=0.15))
    add("INBOX", "S", message("Frank <frank@example.net>", ME, "Read: Budget 2024", "Your message was read.",
                              age_days=700))
    return out


def write(target: Path) -> int:
    if target.exists():
        shutil.rmtree(target)
    for sub in ("cur", "new", "tmp"):
        (target / sub).mkdir(parents=True)
    for index, (folder, flags, msg, arrived) in enumerate(sample_messages(), start=1):
        directory = target if folder == "INBOX" else target / ("." + folder.replace("/", "."))
        stamp = int(arrived.timestamp())
        path = directory / "cur" / f"{stamp}.M{index}P1.sample:2,{flags}"
        path.write_bytes(bytes(msg))
        os.utime(path, (stamp, stamp))
    for folder in ("Archive", "Trash"):
        for sub in ("cur", "new", "tmp"):
            (target / f".{folder}" / sub).mkdir(parents=True, exist_ok=True)
    for empty in target.rglob("*"):
        if empty.is_dir() and not any(empty.iterdir()):
            (empty / ".keep").touch()  # git keeps no empty folders; Maildir readers skip dot files
    return len(sample_messages())


if __name__ == "__main__":
    destination = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("Maildir")
    print(f"wrote {write(destination)} messages to {destination}")
