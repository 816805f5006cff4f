"""A deterministic, realistic mailbox of N messages, written straight into Maildir files.

Two years of mail a developer in Germany might have: GitHub notifications, mailing
lists (``Precedence: list``), newsletters (``Precedence: bulk``), invoices and receipts
(many with RFC 2047 encoded subjects, as German senders' umlauts force), CI mails,
social networks, shop and travel mail, team and boss mail, spam and personal mail with
attachments.  Sizes run from 1 KB to 200 KB, mostly small.  The same ``count``,
``seed`` and ``now`` always give the same bytes.

Messages are written as files into ``cur/`` with Maildir flags in the name and the
arrival time as mtime (Dovecot's INTERNALDATE), owned by the mail user.

    python benchmarks/mailgen.py OUT_DIR --count 10000 [--seed 1] [--now 2026-11-20T10:00:00Z]
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

MAIL_UID = MAIL_GID = 65534  # Dovecot refuses to access mail as root
OWNER = "u@example.com"
TEAM = "team@example.com"
SPAN_DAYS = 730
EXTRA_FOLDERS = ("Archive",)  # folders that hold some mail before any rule runs
MAX_SIZE = 200 * 1024
MIN_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Message:
    """One generated message: where it lies, its Maildir flag letters, arrival time and bytes."""

    index: int
    folder: str
    flags: str
    arrived: datetime
    raw: bytes


@dataclass(frozen=True, slots=True)
class Draft:
    """What a category decides about a message before the common headers are added."""

    sender: str
    subject: str  # already RFC 2047-encoded where the sender would encode it
    to: str = OWNER
    extra: tuple[tuple[str, str], ...] = ()
    cc: str | None = None
    attachment: str | None = None  # file name of an attachment, if any
    seen_bias: float = 0.0


# ---------------------------------------------------------------- word pools

WORDS = (
    "the build release patch review merge commit branch issue please thanks meeting schedule "
    "update deadline customer report draft budget server kernel driver memory performance "
    "regression test suite package maintainer upstream bug feature discussion proposal agenda "
    "notes vacation weekend dinner family photos holiday trip conference talk slides video "
    "question answer idea plan tomorrow yesterday morning evening office remote team project "
    "Rechnung Zahlung Bestellung Lieferung danke bitte Termin Woche heute morgen"
).split()
FIRST = "Anna Ben Clara David Eva Felix Greta Hannah Jonas Lena Max Mia Noah Paul Sophie Tim".split()
LAST = "Becker Fischer Hoffmann Koch Meyer Müller Richter Schmidt Schulz Wagner Weber Wolf".split()
FREEMAIL = ("gmail.com", "web.de", "gmx.de", "posteo.de", "mailbox.org", "example.org")
REPOS = ("octo/widgets", "acme/api", "acme/frontend", "pallets/click", "python/cpython", "psf/black")
OTHER_LISTS = ("users.lists.example.org", "announce.lists.example.net", "dev.lists.example.com")
SHOPS = (("Amazon.de", "shipment-tracking@amazon.de"), ("Zalando", "info@service-mail.zalando.de"))
NEWSLETTERS = (("Heise", "newsletter@heise.de"), ("LWN", "lwn@lwn.net"), ("Shop Weekly", "news@shop.example"))
TZ_OFFSETS = (0, 60, 60, 120, -300, -480)


def _sentence(rng: random.Random, low: int = 6, high: int = 18) -> str:
    words = rng.choices(WORDS, k=rng.randint(low, high))
    return " ".join(words).capitalize() + "."


def _person(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = f"{first}.{last}".lower().replace("ü", "ue")
    return f"{first} {last}", f"{local}@{rng.choice(FREEMAIL)}"


# ---------------------------------------------------------------- RFC 2047


def encode_q(text: str, limit: int = 60) -> str:
    """``text`` as Q encoded words of at most ``limit`` characters each, folded onto lines."""
    words, current = [], ""
    for char in text:
        piece = _q_char(char)
        if len(current) + len(piece) > limit - 12:
            words.append(current)
            current = ""
        current += piece
    words.append(current)
    return "\n ".join(f"=?utf-8?q?{word}?=" for word in words)


def _q_char(char: str) -> str:
    if char == " ":
        return "_"
    if char.isascii() and char.isalnum():
        return char
    return "".join(f"={byte:02X}" for byte in char.encode("utf-8"))


def encode_b(text: str) -> str:
    """``text`` as one B encoded word (short subjects only, as senders typically do)."""
    return "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def needs_encoding(text: str) -> bool:
    return not text.isascii()


# ---------------------------------------------------------------- categories


def github(rng: random.Random) -> Draft:
    repo = rng.choice(REPOS)
    owner, name = repo.split("/")
    number = rng.randint(1, 9999)
    kind = rng.choice(("Issue", "PR", "Release"))
    subject = f"Re: [{repo}] {_sentence(rng, 3, 8)[:-1]} ({kind} #{number})"
    extra = (
        ("List-ID", f"{repo} <{name}.{owner}.github.com>"),
        ("List-Archive", f"https://github.com/{repo}"),
        ("List-Unsubscribe", "<mailto:unsub+x@reply.github.com>"),
        ("X-GitHub-Reason", rng.choice(("subscribed", "mention", "review_requested", "author"))),
    )
    return Draft(f"{rng.choice(FIRST)} <notifications@github.com>", subject, extra=extra, seen_bias=0.1)


def mailing_list(rng: random.Random) -> Draft:
    name, address = _person(rng)
    listid, description = rng.choice((
        ("python-dev.python.org", "Python core developers"),
        ("linux-kernel.vger.kernel.org", None),
        ("debian-devel.lists.debian.org", "Discussion of Debian development"),
        ("debian-user.lists.debian.org", "Debian users"),
        *((other, "Project list") for other in OTHER_LISTS),
    ))
    value = f"{description} <{listid}>" if description else f"<{listid}>"
    local, _, domain = listid.partition(".")
    subject = rng.choice(("", "Re: ", "[PATCH] ", "Re: [PATCH v2] ")) + _sentence(rng, 3, 9)[:-1]
    extra = (("List-Id", value), ("Precedence", "list"), ("List-Post", f"<mailto:{local}@{domain}>"))
    return Draft(f"{name} <{address}>", subject, to=f"{local}@{domain}", extra=extra)


def newsletter(rng: random.Random) -> Draft:
    brand, address = rng.choice(NEWSLETTERS)
    subject = f"{brand} weekly digest #{rng.randint(1, 400)}"
    extra = (("Precedence", "bulk"), ("List-Unsubscribe", f"<https://{address.split('@')[1]}/unsub>"))
    return Draft(f"{brand} <{address}>", subject, extra=extra, seen_bias=-0.2)


def invoice(rng: random.Random) -> Draft:
    number = f"{rng.randint(2024, 2026)}-{rng.randint(1, 99999):05d}"
    style = rng.random()
    if style < 0.35:  # German sender: umlauts force an encoded subject, q or b as their MUA likes
        text = f"Rechnung Nr. {number} für {rng.choice(('März', 'Mai', 'Juni', 'Oktober'))}"
        subject = encode_q(text) if rng.random() < 0.6 else encode_b(text)
        sender = rng.choice(("Telekom <rechnung@telekom.de>", "Stadtwerke <abrechnung@stadtwerke.example>"))
    elif style < 0.55:
        subject, sender = f"Rechnung Nr. {number}", "Hosting GmbH <billing@hosting.example>"
    elif style < 0.8:
        subject, sender = f"Invoice No. {number}", "Hetzner <billing@hetzner.com>"
    else:  # encoded for a dash, although the text is English
        subject, sender = encode_q(f"Invoice No. {number} – cloud services"), "Cloud <billing@cloud.example>"
    return Draft(sender, subject, attachment=f"invoice-{number}.pdf" if rng.random() < 0.7 else None)


def receipt(rng: random.Random) -> Draft:
    shop = rng.choice(("Steam", "Bandcamp", "Coffee Roasters", "itch.io"))
    sender, subject = rng.choice((
        ("PayPal <service@paypal.com>", f"Receipt for your payment to {shop}"),
        ("PayPal <service@mail.paypal.com>", f"Receipt for your payment to {shop}"),
        ("PayPal <service@paypal.de>", encode_q(f"Ihre Zahlung an {shop} – Beleg")),
    ))
    return Draft(sender, subject)


def phish(rng: random.Random) -> Draft:
    """Look-alike domains: a substring match on ``paypal.com`` catches them, a domain match does not."""
    domain = rng.choice(("paypal.com.account-verify.example", "paypal.com-security.example"))
    return Draft(f"PayPal <service@{domain}>", "Your account has been limited", seen_bias=-0.3)


def ci_build(rng: random.Random) -> Draft:
    outcome = rng.choice(("failed", "passed", "passed", "passed", "is broken", "fixed"))
    subject = f"Build #{rng.randint(1000, 99999)} of acme/api {outcome}"
    return Draft("CI <builds@ci.example.com>", subject, to=TEAM)


def social(rng: random.Random) -> Draft:
    sender, subject = rng.choice((
        ("Facebook <notification@facebookmail.com>", f"{rng.choice(FIRST)} commented on your post"),
        ("LinkedIn <messages-noreply@linkedin.com>", f"{rng.choice(FIRST)} wants to connect"),
        ("Mastodon <notifications@mastodon.example>", f"{rng.choice(FIRST)} followed you"),
    ))
    return Draft(sender, subject)


def shopping(rng: random.Random) -> Draft:
    brand, address = rng.choice(SHOPS)
    order = f"{rng.randint(100, 999)}-{rng.randint(1000000, 9999999)}"
    subject = rng.choice((f"Your order #{order} has shipped", f"Your Order {order} confirmation"))
    return Draft(f"{brand} <{address}>", subject)


def travel(rng: random.Random) -> Draft:
    code = "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", k=6))
    subject = rng.choice((
        f"Your boarding pass for LH{rng.randint(100, 2999)}",
        f"Booking confirmation {code}",
        encode_q(f"Booking Confirmation {code} – München"),
    ))
    return Draft("Travel <noreply@travel.example>", subject, attachment="boarding-pass.pdf")


def team(rng: random.Random) -> Draft:
    first = rng.choice(FIRST)
    subject = rng.choice(("", "Re: ", "Fwd: ")) + _sentence(rng, 3, 7)[:-1]
    to, cc = (TEAM, None) if rng.random() < 0.6 else (OWNER, TEAM)
    return Draft(f"{first} <{first.lower()}@example.com>", subject, to=to, cc=cc)


def jira(rng: random.Random) -> Draft:
    key = f"PROJ-{rng.randint(1, 5000)}"
    return Draft("Jira <jira@work.example>", f"[JIRA] ({key}) {_sentence(rng, 3, 7)[:-1]}")


def boss(rng: random.Random) -> Draft:
    subject = rng.choice(("", "Re: ")) + _sentence(rng, 2, 6)[:-1]
    return Draft("Maria Boss <boss@example.com>", subject, cc=TEAM if rng.random() < 0.3 else None)


def spam(rng: random.Random) -> Draft:
    subject = rng.choice(("You have won!!!", "Cheap meds", "Re: your invoice", "Urgent business proposal"))
    extra = (("X-Spam-Flag", "YES"), ("X-Spam-Status", f"Yes, score={rng.randint(6, 30)}.0"))
    return Draft(f"Winner <promo{rng.randint(1, 999)}@spam.example>", subject, extra=extra, seen_bias=-0.5)


def personal(rng: random.Random) -> Draft:
    name, address = _person(rng)
    text = rng.choice(("", "Re: ", "AW: ")) + _sentence(rng, 2, 7)[:-1]
    if rng.random() < 0.15:
        text += rng.choice((" – Grüße aus München", " 🙂", " (Fotos)"))
    subject = encode_q(text) if needs_encoding(text) else text
    extra = (("X-Spam-Flag", "NO"),) if rng.random() < 0.3 else ()
    attachment = rng.choice(("photo.jpg", "notes.pdf", "scan.png")) if rng.random() < 0.2 else None
    return Draft(f"{name} <{address}>", subject, extra=extra, attachment=attachment, seen_bias=0.1)


CATEGORIES: tuple[tuple[Callable[[random.Random], Draft], float], ...] = (
    (github, 22), (mailing_list, 20), (newsletter, 10), (invoice, 4), (receipt, 3), (phish, 0.3),
    (ci_build, 5), (social, 4), (shopping, 3), (travel, 1), (team, 7), (jira, 3), (boss, 1),
    (spam, 3), (personal, 13.7),
)


# ---------------------------------------------------------------- bodies


@dataclass(frozen=True, slots=True)
class Pools:
    """Text and attachment data made once per run, so 100,000 messages stay cheap to build."""

    paragraphs: tuple[str, ...]
    blob: str  # base64 of random bytes, sliced for attachments


def make_pools(rng: random.Random) -> Pools:
    paragraphs = tuple(_wrap(" ".join(_sentence(rng) for _ in range(rng.randint(2, 6)))) for _ in range(400))
    raw = rng.randbytes(MAX_SIZE)
    return Pools(paragraphs, base64.b64encode(raw).decode("ascii"))


def target_size(rng: random.Random, attachment: bool) -> int:
    """Mostly small; attachments make the medium and the few big ones."""
    if attachment:
        return min(MAX_SIZE, int(rng.lognormvariate(10.3, 0.9)))  # median ~30 KB
    roll = rng.random()
    if roll < 0.9:
        return rng.randint(MIN_SIZE, 6 * 1024)
    if roll < 0.99:
        return rng.randint(6 * 1024, 40 * 1024)
    return rng.randint(40 * 1024, MAX_SIZE)


def text_body(rng: random.Random, pools: Pools, size: int) -> str:
    """About ``size`` characters of wrapped paragraphs, cut at a line end."""
    text = "\n\n".join(rng.choices(pools.paragraphs, k=size // 250 + 2))
    cut = text.find("\n", size)
    return (text if cut < 0 else text[:cut]) + "\n"


def _wrap(paragraph: str, width: int = 72) -> str:
    lines, line = [], ""
    for word in paragraph.split(" "):
        if line and len(line) + len(word) >= width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\n".join(lines)


def attachment_part(rng: random.Random, pools: Pools, filename: str, size: int) -> str:
    size = min(size, len(pools.blob)) // 4 * 4  # whole base64 quanta, so the part decodes cleanly
    start = rng.randrange(0, len(pools.blob) - size + 1) // 4 * 4
    data = pools.blob[start:start + size]
    lines = "\n".join(data[i:i + 76] for i in range(0, len(data), 76))
    kind = {"pdf": "application/pdf", "jpg": "image/jpeg", "png": "image/png"}[filename.rsplit(".", 1)[1]]
    return (f'Content-Type: {kind}; name="{filename}"\nContent-Transfer-Encoding: base64\n'
            f'Content-Disposition: attachment; filename="{filename}"\n\n{lines}\n')


# ---------------------------------------------------------------- whole messages


def compose(rng: random.Random, pools: Pools, draft: Draft, index: int, arrived: datetime) -> bytes:
    size = target_size(rng, draft.attachment is not None)
    head = header_block(rng, draft, index, arrived)
    return (head + _mime_body(rng, pools, draft, index, size - len(head))).encode("utf-8")


def header_block(rng: random.Random, draft: Draft, index: int, arrived: datetime) -> str:
    sent = arrived - timedelta(seconds=rng.randint(3, 900))
    sent = sent.astimezone(timezone(timedelta(minutes=rng.choice(TZ_OFFSETS))))
    address = draft.sender[draft.sender.find("<") + 1:-1]
    domain = address.rsplit("@", 1)[1]
    headers = [
        f"Return-Path: <{address}>",
        f"Received: from mx{index % 7}.{domain} (mx.{domain} [192.0.2.{index % 250 + 1}])\n"
        f"\tby mail.example.com with ESMTPS id {index:08x}; {format_datetime(arrived)}",
        f"Date: {format_datetime(sent)}",
        f"From: {_encode_display(draft.sender)}",
        f"To: {draft.to}",
        *([f"Cc: {draft.cc}"] if draft.cc else []),
        f"Subject: {draft.subject}",
        f"Message-ID: <{index:08d}.{rng.getrandbits(48):012x}@{domain}>",
        *(f"{name}: {value}" for name, value in draft.extra),
        "MIME-Version: 1.0",
    ]
    return "\n".join(headers) + "\n"


def _encode_display(sender: str) -> str:
    name, _, rest = sender.partition(" <")
    return f"{encode_q(name)} <{rest}" if needs_encoding(name) else sender


def _mime_body(rng: random.Random, pools: Pools, draft: Draft, index: int, budget: int) -> str:
    """A body that brings the message to about ``budget`` more characters (never below MIN_SIZE)."""
    plain = "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n"
    if draft.attachment is None:
        return f"{plain}\n{text_body(rng, pools, max(budget - len(plain), MIN_SIZE))}"
    boundary = f"=_mailgen_{index:08x}"
    text = text_body(rng, pools, rng.randint(200, 1500))
    encoded_size = max(budget - len(text) - 600, 600) * 76 // 77  # room for the line breaks
    attached = attachment_part(rng, pools, draft.attachment, encoded_size)
    return (f'Content-Type: multipart/mixed; boundary="{boundary}"\n\nThis is a multi-part message in MIME format.\n\n'
            f"--{boundary}\n{plain}\n{text}\n--{boundary}\n{attached}\n--{boundary}--\n")


def flags_for(rng: random.Random, draft: Draft, age_days: float) -> str:
    seen_chance = (0.35 if age_days < 14 else 0.8) + draft.seen_bias
    letters = "S" if rng.random() < seen_chance else ""
    if rng.random() < 0.02:
        letters += "F"
    if letters and rng.random() < 0.06:
        letters += "R"
    return "".join(sorted(letters))


def generate(count: int, *, seed: int, now: datetime) -> Iterator[Message]:
    """``count`` messages arriving over the ``SPAN_DAYS`` before ``now``, the same for the same arguments."""
    rng = random.Random(seed)
    pools = make_pools(rng)
    makers = [maker for maker, _ in CATEGORIES]
    weights = [weight for _, weight in CATEGORIES]
    for index in range(count):
        age = rng.uniform(0, SPAN_DAYS * 86400)
        arrived = (now - timedelta(seconds=age)).replace(microsecond=0)
        draft = rng.choices(makers, weights)[0](rng)
        folder = "Archive" if draft.to == OWNER and rng.random() < 0.03 else "INBOX"
        raw = compose(rng, pools, draft, index, arrived)
        yield Message(index, folder, flags_for(rng, draft, age / 86400), arrived, raw)


# ---------------------------------------------------------------- Maildir output


def folder_dir(root: Path, folder: str) -> Path:
    """Maildir++ layout with ``/`` as separator: ``Lists/lkml`` is ``.Lists.lkml``."""
    return root if folder == "INBOX" else root / ("." + folder.replace("/", "."))


def make_folder(root: Path, folder: str) -> Path:
    path = folder_dir(root, folder)
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
        os.chown(path / sub, MAIL_UID, MAIL_GID)
    os.chown(path, MAIL_UID, MAIL_GID)
    if path != root:
        (path / "maildirfolder").touch()
        os.chown(path / "maildirfolder", MAIL_UID, MAIL_GID)
    return path


def write_maildir(root: Path, messages: Iterable[Message], folders: Iterable[str] = ()) -> int:
    """Write messages (and create the empty ``folders``); returns how many were written."""
    root.mkdir(parents=True, exist_ok=True)
    paths = {name: make_folder(root, name) for name in {"INBOX", *EXTRA_FOLDERS, *folders}}
    written = 0
    for message in messages:
        stamp = message.arrived.timestamp()
        name = f"{int(stamp)}.M{message.index}P0.mailgen:2,{message.flags}"
        path = paths[message.folder] / "cur" / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, message.raw)
            os.fchown(fd, MAIL_UID, MAIL_GID)
        finally:
            os.close(fd)
        os.utime(path, (stamp, stamp))
        written += 1
    subscribe(root, paths)
    return written


def subscribe(root: Path, paths: dict[str, Path]) -> None:
    listing = "".join(f"{name}\n" for name in sorted(paths) if name != "INBOX")
    (root / "subscriptions").write_text(listing)
    os.chown(root / "subscriptions", MAIL_UID, MAIL_GID)


def parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(timezone.utc).replace(microsecond=0)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="Maildir root to create (must not exist)")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--now", help="the generation clock, e.g. 2026-11-20T10:00:00Z (default: now)")
    parser.add_argument("--folders", default="", help="comma-separated empty folders to create too")
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"{args.out} exists already")
    folders = [name for name in args.folders.split(",") if name]
    written = write_maildir(args.out, generate(args.count, seed=args.seed, now=parse_now(args.now)), folders)
    print(f"{written} messages written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
