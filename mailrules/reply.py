"""Auto-replies and redirects: who may be answered (RFC 3834), what the reply says, and the bytes sent.

Pure apart from reading a template file: the planner calls ``prepare_reply`` /
``prepare_redirect`` for every send a rule asks for, and the plan carries the exact message
that ``run`` hands to SMTP.  The guards follow RFC 3834 §2 and Pigeonhole's vacation
extension: never answer automatic mail, lists, bounces, ourselves, or mail that wasn't
addressed to us.  Every header value taken from the original is untrusted: it reaches a
generated header only after CR, LF and other control characters are removed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import formataddr, format_datetime, getaddresses, make_msgid, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING

from mailrules.model import Reply, Rule
from mailrules.plan import Send
from mailrules.variables import Identity, template_variables

if TYPE_CHECKING:
    from mailrules.message import MessageView

# Local parts that never get an automatic answer (RFC 3834 §2, Pigeonhole vacation, common practice).
NEVER_ANSWER = frozenset({"mailer-daemon", "postmaster", "listserv", "majordomo", "noreply", "no-reply",
                          "do-not-reply", "donotreply"})
AUTOMATIC_PRECEDENCE = frozenset({"bulk", "list", "junk"})
SUPPRESS_TOKENS = frozenset({"all", "oof"})
RECIPIENT_HEADERS = ("To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc")
LOOP_HEADER = "X-Mailrules-Loop"  # marks mail we redirected, so it is never redirected by us again
PREVIEW_LINES = 4
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_AUTO_PREFIX = re.compile(r"^(\s*auto:\s*)+", re.IGNORECASE)


def clean_header(value: str) -> str:
    """A value safe for a generated header: no CR/LF (no header injection), no control characters."""
    return " ".join(_CONTROL.sub(" ", value).split())


# ---------------------------------------------------------------- RFC 3834 guards


def envelope_sender(message: MessageView) -> str | None:
    """Return-Path, else Reply-To, else From: the address an automatic answer goes to."""
    for name in ("Return-Path", "Reply-To", "From"):
        for value in message.header_values(name):
            address = parseaddr(clean_header(value))[1]
            if name == "Return-Path" and not address:
                return ""  # `Return-Path: <>`: a bounce, answer nobody
            if "@" in address:
                return address
    return None


def automatic_reason(message: MessageView) -> str | None:
    """Why a message counts as automatic or list mail (RFC 3834 §2), if it does."""
    for value in message.header_values("Auto-Submitted"):
        token = value.split(";")[0].strip().lower()
        if token and token != "no":
            return f"the message is automatic (Auto-Submitted: {clean_header(value)})"
    for name in message.header_names():
        if name.lower().startswith("list-"):
            return f"the message came from a mailing list ({name} header)"
    for value in message.header_values("Precedence"):
        if value.strip().lower() in AUTOMATIC_PRECEDENCE:
            return f"the message is bulk mail (Precedence: {clean_header(value)})"
    for value in message.header_values("X-Auto-Response-Suppress"):
        tokens = {token.strip().lower() for token in value.split(",")}
        if tokens & SUPPRESS_TOKENS:
            return f"the sender asked for no automatic replies (X-Auto-Response-Suppress: {clean_header(value)})"
    return None


def sender_reason(sender: str | None, identity: Identity) -> str | None:
    if sender is None:
        return "no usable sender address"
    if sender == "":
        return "the message is a bounce (Return-Path: <>)"
    local = sender.rsplit("@", 1)[0].lower()
    if local in NEVER_ANSWER or local.startswith("owner-") or local.endswith("-request"):
        return f"the sender {sender} is a mail system or list address"
    if identity.owns(sender):
        return f"the sender {sender} is this account"
    return None


def addressed_to(message: MessageView, identity: Identity) -> bool:
    values = [value for name in RECIPIENT_HEADERS for value in message.header_values(name)]
    return any(identity.owns(address) for _, address in getaddresses([clean_header(v) for v in values]))


def reply_skip_reason(message: MessageView, reply: Reply, identity: Identity) -> str | None:
    """The documented reason not to answer this message, or None when a reply is allowed."""
    reason = automatic_reason(message) or sender_reason(envelope_sender(message), identity)
    if reason is None and reply.require_recipient and not addressed_to(message, identity):
        reason = "none of the account's addresses is in To/Cc/Bcc/Resent-* (set require_recipient: false for shared mailboxes)"
    return reason


def redirect_skip_reason(message: MessageView, identity: Identity) -> str | None:
    """Redirects only refuse loops and bounces: forwarding machine-sent mail (invoices) is their point."""
    if message.header_values(LOOP_HEADER) and any(identity.owns(v.strip()) for v in message.header_values(LOOP_HEADER)):
        return "this account already redirected the message once (loop)"
    sender = envelope_sender(message)
    if sender == "":
        return "the message is a bounce (Return-Path: <>)"
    if sender and sender.rsplit("@", 1)[0].lower() == "mailer-daemon":
        return "the message is a bounce (from MAILER-DAEMON)"
    return None


# ---------------------------------------------------------------- rendering


def default_subject(original: str) -> str:
    """``Auto: <subject>`` with any earlier ``Auto:`` prefixes folded into one (RFC 3834 §3.1.5)."""
    return "Auto: " + _AUTO_PREFIX.sub("", original)


def template_root(rule: Rule) -> Path:
    """The folder a rule's reply templates are loaded from: its rule file's, as an absolute path.

    A rule file named relative to the working directory (``mailrules explain rules.yaml``)
    must find its templates as surely as one named absolutely from cron.
    """
    return Path(os.path.abspath(rule.source)).parent


def render_reply(reply: Reply, variables: Mapping[str, object], base_dir: Path) -> tuple[str, str]:
    """(subject, body) rendered in the sandbox; raises ReplyTemplateError with the reason."""
    from mailrules.templates import make_environment, template_name

    env = make_environment(base_dir)
    try:
        if reply.template is not None:
            body = env.get_template(template_name(base_dir, reply.template)).render(variables)
        else:
            body = env.from_string(reply.body or "").render(variables)
        message = variables["message"]
        assert isinstance(message, dict)
        subject = (env.from_string(reply.subject).render(variables) if reply.subject is not None
                   else default_subject(str(message["subject"])))
    except Exception as exc:  # noqa: BLE001 - jinja raises many kinds; the user sees one message
        raise ReplyTemplateError(f"{type(exc).__name__}: {exc}") from None
    return clean_header(_AUTO_PREFIX.sub("Auto: ", subject, count=1)), body


class ReplyTemplateError(Exception):
    pass


# ---------------------------------------------------------------- internationalised addresses


class UnsendableAddress(Exception):
    """An address no SMTP server can be given; the message says why."""


@dataclass(frozen=True, slots=True)
class SmtpAddress:
    """An address as it goes into the envelope and the headers.

    A non-ASCII domain is written as IDNA A-labels (``xn--``), which every server takes;
    only a non-ASCII local part, which has no ASCII form, needs SMTPUTF8 (RFC 6531).
    """

    address: str
    needs_smtputf8: bool
    ascii_domain: str  # for what must stay ASCII even then, such as a Message-ID


def smtp_address(address: str) -> SmtpAddress:
    """The form of ``address`` to send to; raises UnsendableAddress when there is none.

    >>> smtp_address("joerg@bücher.example")
    SmtpAddress(address='joerg@xn--bcher-kva.example', needs_smtputf8=False, ascii_domain='xn--bcher-kva.example')
    >>> smtp_address("jürgen@bücher.example").needs_smtputf8
    True
    """
    local, _, domain = address.rpartition("@")
    if not local or not domain:
        raise UnsendableAddress(f"{address!r} is not an address (local@domain)")
    if address.isascii():
        return SmtpAddress(address, False, domain)
    import idna

    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise UnsendableAddress(f"the domain of {address} is not a valid internationalised domain name "
                                f"({exc})") from None
    if local.isascii():
        return SmtpAddress(f"{local}@{ascii_domain}", False, ascii_domain)
    return SmtpAddress(f"{local}@{domain}", True, ascii_domain)


def unsendable_reason(message: MessageView, reply: Reply, identity: Identity) -> str | None:
    """Why no SMTP server could be given this reply's addresses, if that is so (for ``explain``)."""
    from_address = reply.sender or identity.address
    try:
        for address in (envelope_sender(message), parseaddr(from_address)[1] if from_address else None):
            if address:
                smtp_address(address)
    except UnsendableAddress as exc:
        return f"the reply can't be sent: {exc}"
    return None


def build_reply(*, sender: str, recipient: str, subject: str, body: str, original: MessageView,
                now: datetime) -> EmailMessage:
    """The reply; ``sender`` may carry a display name.  Raises UnsendableAddress.

    Non-ASCII display names and subjects become RFC 2047 encoded words, unless an address
    needs SMTPUTF8 anyway: then the headers are UTF-8 as RFC 6532 allows.
    """
    name, bare = parseaddr(clean_header(sender))
    from_address, to_address = smtp_address(bare), smtp_address(clean_header(recipient))
    utf8 = from_address.needs_smtputf8 or to_address.needs_smtputf8
    reply = EmailMessage(policy=SMTPUTF8 if utf8 else SMTP)
    reply["From"] = formataddr((name, from_address.address)) if name else from_address.address
    reply["To"] = to_address.address
    reply["Subject"] = subject
    reply["Date"] = format_datetime(now)
    reply["Message-ID"] = make_msgid(domain=from_address.ascii_domain)
    reply["Auto-Submitted"] = "auto-replied"
    original_id = clean_header(original.message_id or "")
    if original_id:
        reply["In-Reply-To"] = original_id
        earlier = " ".join(clean_header(v) for v in original.header_values("References"))
        reply["References"] = f"{earlier} {original_id}".strip()
    reply.set_content(body, charset="utf-8")
    return reply


def redirected_bytes(raw: bytes, *, account_address: str, recipient: str, now: datetime) -> bytes:
    """The original, unchanged, with Resent-* trace headers prepended (RFC 5322 §3.6.6)."""
    domain = account_address.rsplit("@", 1)[-1]
    trace = (f"Resent-From: {account_address}\r\nResent-To: {recipient}\r\n"
             f"Resent-Date: {format_datetime(now)}\r\nResent-Message-ID: {make_msgid(domain=domain)}\r\n"
             f"{LOOP_HEADER}: {account_address}\r\n")
    return trace.encode("utf-8") + raw  # a non-ASCII account address makes the sender ask for SMTPUTF8


# ---------------------------------------------------------------- planning sends


@dataclass
class SendPlanner:
    """Decides every reply and redirect of a plan: skipped with a reason, or the exact bytes to send.

    ``last_reply(rule, sender)`` reads when that sender was last answered by the rule (state);
    replies answered earlier in the same plan count too, so one run answers each sender once.
    """

    identity: Identity
    rules: Mapping[str, Rule]
    base_dirs: Mapping[str, Path]
    now: datetime
    last_reply: Callable[[str, str], datetime | None] | None = None
    answered: set[tuple[str, str]] = field(default_factory=set)

    def __call__(self, send: Send, message: MessageView) -> Send:
        if send.kind == "redirect":
            return self._redirect(send, message)
        return self._reply(send, message)

    def _reply(self, send: Send, message: MessageView) -> Send:
        assert send.reply is not None
        reply, rule = send.reply, self.rules[send.rule]
        sender = envelope_sender(message)
        reason = reply_skip_reason(message, reply, self.identity) or self._recently_answered(send.rule, sender, reply)
        if reason is not None:
            return replace(send, recipient=sender or None, skip_reason=reason)
        assert sender
        from_address = reply.sender or self.identity.address
        if not from_address:
            return replace(send, recipient=sender, skip_reason="the account has no address to reply from")
        try:
            subject, body = render_reply(reply, template_variables(message, rule, self.identity),
                                         self.base_dirs[send.rule])
        except ReplyTemplateError as exc:
            return replace(send, recipient=sender, skip_reason=f"the template failed: {exc}", failed=True)
        try:
            envelope_from, recipient = smtp_address(parseaddr(from_address)[1]), smtp_address(sender)
            payload = bytes(build_reply(sender=from_address, recipient=sender, subject=subject, body=body,
                                        original=message, now=self.now))
        except (UnsendableAddress, UnicodeError) as exc:
            return replace(send, recipient=sender, skip_reason=f"the reply can't be sent: {exc}", failed=True)
        self.answered.add((send.rule, sender.casefold()))
        return replace(send, recipient=recipient.address, subject=subject, preview=_preview(body),
                       sender_key=sender.casefold(), payload=payload, envelope_from=envelope_from.address)

    def _recently_answered(self, rule: str, sender: str | None, reply: Reply) -> str | None:
        if not sender:
            return None
        if (rule, sender.casefold()) in self.answered:
            return f"{sender} is already answered in this run"
        last = self.last_reply(rule, sender.casefold()) if self.last_reply else None
        if last is not None and self.now - last < timedelta(seconds=reply.once_per_seconds):
            return f"{sender} was answered at {last:%Y-%m-%d %H:%M} (once per {_period(reply.once_per_seconds)})"
        return None

    def _redirect(self, send: Send, message: MessageView) -> Send:
        reason = redirect_skip_reason(message, self.identity)
        if reason is None and not self.identity.address:
            reason = "the account has no address to redirect from"
        return replace(send, skip_reason=reason, subject=message.subject,
                       envelope_from=self.identity.address)


def _preview(body: str) -> str:
    return "\n".join(body.strip().splitlines()[:PREVIEW_LINES])


def _period(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    return f"{days}d" if not rest else f"{seconds // 3600}h"
