"""Sending replies and redirects over SMTP.  The only module that imports smtplib.

TLS is verified by default; ``starttls`` refuses a server that doesn't offer it rather than
falling back to plaintext.  Every smtplib/socket/ssl failure becomes a BackendError that
names the server but never the password.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

from mailrules.errors import AuthenticationFailed, BackendError, SendRefused
from mailrules.plan import Send
from mailrules.reply import redirected_bytes


class RawSource(Protocol):
    """Where a redirect's original comes from: the open mailbox, whatever its kind."""

    def fetch_raw(self, uid: int) -> bytes | None: ...

TIMEOUT = 30.0


@dataclass
class SmtpSender:
    host: str
    port: int
    tls: str = "ssl"  # ssl | starttls | none
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    timeout: float = TIMEOUT
    oauth2: Callable[[], str] | None = field(default=None, repr=False)  # access tokens instead of a password
    _connection: smtplib.SMTP | None = field(default=None, init=False, repr=False)

    def send(self, send: Send, mailbox: RawSource) -> None:
        """Hand ``send`` to the server; SendRefused when it never can, BackendError when it failed this time."""
        if send.recipient is None or send.envelope_from is None:
            raise BackendError(f"{send.kind} for UID {send.uid} has no recipient or sender")
        data = self._data(send, mailbox)
        connection = self._connect()
        options = self._utf8_options(connection, send.recipient, send.envelope_from, data)
        try:
            refused = connection.sendmail(send.envelope_from, [send.recipient], data, mail_options=options)
        except smtplib.SMTPRecipientsRefused as exc:
            self._after_refusal(send, exc.recipients)
        except UnicodeError:
            # Only a server without SMTPUTF8 would be sent a non-ASCII command; we never do.
            self.close()
            raise SendRefused(f"the address {send.recipient} can't be written for {self._name}") from None
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise BackendError(f"SMTP server {self._name} did not accept the {send.kind}: "
                               f"{_describe(exc)}") from None
        if refused:
            raise BackendError(f"SMTP server {self._name} refused {send.recipient}: {refused}")

    @property
    def _name(self) -> str:
        return f"{self.host}:{self.port}"

    def _utf8_options(self, connection: smtplib.SMTP, recipient: str, envelope_from: str, data: bytes) -> list[str]:
        """``["SMTPUTF8"]`` (RFC 6531) when an address needs it, which the server must then offer, or
        when the message's own headers are UTF-8 (a redirected original) and the server offers it."""
        unwritable = next((address for address in (recipient, envelope_from) if not address.isascii()), None)
        if unwritable is None and data.split(b"\r\n\r\n", 1)[0].isascii():
            return []
        try:
            connection.ehlo_or_helo_if_needed()
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise BackendError(f"SMTP server {self._name} did not answer EHLO: {_describe(exc)}") from None
        if connection.has_extn("smtputf8"):
            return ["SMTPUTF8"]
        if unwritable is not None:
            raise SendRefused(f"the address {unwritable} has a non-ASCII local part, which needs SMTPUTF8, "
                              f"and SMTP server {self._name} does not offer it")
        return []  # 8-bit headers as servers took them before SMTPUTF8 existed

    def _after_refusal(self, send: Send, recipients: dict[str, tuple[int, bytes]]) -> None:
        """A 5xx for the address is final; anything else may pass on the next run."""
        answers = "; ".join(f"{code} {_text(reply)}" for code, reply in recipients.values())
        if recipients and all(code >= 500 for code, _ in recipients.values()):
            raise SendRefused(f"SMTP server {self._name} refused {send.recipient} for good: {answers}")
        self.close()
        raise BackendError(f"SMTP server {self._name} refused {send.recipient} for now: {answers}")

    def _data(self, send: Send, mailbox: RawSource) -> bytes:
        if send.kind == "reply":
            assert send.payload is not None
            return send.payload
        raw = mailbox.fetch_raw(send.uid)
        if raw is None:
            raise BackendError(f"message UID {send.uid} vanished before it could be redirected")
        assert send.envelope_from is not None and send.recipient is not None
        return redirected_bytes(raw, account_address=send.envelope_from, recipient=send.recipient,
                                now=datetime.now(timezone.utc))

    def _connect(self) -> smtplib.SMTP:
        if self._connection is not None:
            return self._connection
        context = ssl.create_default_context(cafile=self.ca_file)
        try:
            if self.tls == "ssl":
                connection: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.tls == "starttls":
                    self._starttls(connection, context)
            if self.username and self.oauth2 is not None:
                self._oauth2_login(connection)
            elif self.username:
                connection.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError:
            raise BackendError(f"SMTP server {self.host}:{self.port} refused the login of {self.username!r}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise BackendError(f"can't connect to SMTP server {self.host}:{self.port}: {_describe(exc)}") from None
        self._connection = connection
        return connection

    def _oauth2_login(self, connection: smtplib.SMTP) -> None:
        """AUTH XOAUTH2 / OAUTHBEARER, whichever the server offers; a refusal says what its challenge said."""
        from mailrules.oauth.sasl import SaslExchange, choose_mechanism, initial_response

        assert self.oauth2 is not None and self.username is not None
        connection.ehlo_or_helo_if_needed()
        offered = connection.esmtp_features.get("auth", "").split()
        mechanism = choose_mechanism(offered)
        where = f"SMTP server {self.host}:{self.port}"
        if mechanism is None:
            connection.close()
            raise AuthenticationFailed(f"{where} offers neither AUTH OAUTHBEARER nor AUTH XOAUTH2 (it offers "
                                       f"{' '.join(offered) or 'no AUTH'}), so OAuth2 sign-in is impossible there")
        exchange = SaslExchange(mechanism, initial_response(mechanism, self.username, self.oauth2(),
                                                            self.host, self.port))
        try:
            connection.auth(mechanism, exchange.smtp, initial_response_ok=True)
        except smtplib.SMTPAuthenticationError as exc:
            connection.close()
            reason = exchange.refusal or _describe(exc)
            raise AuthenticationFailed(f"{where} refused the OAuth2 sign-in of {self.username!r} "
                                       f"({mechanism}): {reason}") from None

    def _starttls(self, connection: smtplib.SMTP, context: ssl.SSLContext) -> None:
        connection.ehlo()
        if not connection.has_extn("starttls"):
            connection.close()
            raise BackendError(f"SMTP server {self.host}:{self.port} does not offer STARTTLS, which the account "
                               "requires; refusing to send in plaintext")
        connection.starttls(context=context)
        connection.ehlo()

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._connection = None


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed ({exc.verify_message}); set ca_file in the account's smtp settings"
    if isinstance(exc, socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__
