"""SASL XOAUTH2 and OAUTHBEARER (RFC 7628): what the client sends, and what a refusal means.

Both mechanisms send the access token once.  A server that refuses it answers with a
challenge holding a JSON object (``{"status": "invalid_token", "scope": ...}``); the
client must then send a dummy response (RFC 7628 §3.2.3: ``%x01``; XOAUTH2: empty) and
the server ends the exchange with a failure.  ``SaslExchange`` plays that dialogue for
imaplib's and smtplib's callback interfaces and keeps the decoded refusal.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Mechanism = Literal["OAUTHBEARER", "XOAUTH2"]
# OAUTHBEARER is the standard; XOAUTH2 is what Microsoft 365 offers (Gmail and Dovecot offer both).
PREFERENCE: tuple[Mechanism, ...] = ("OAUTHBEARER", "XOAUTH2")

# What the status of an error challenge means: RFC 6750 §3.1 codes (OAUTHBEARER) and the
# HTTP statuses Google and Microsoft put there for XOAUTH2.
_STATUS_MEANING = {
    "invalid_token": "the access token is invalid, expired or revoked",
    "401": "the access token is invalid, expired or revoked",
    "insufficient_scope": "the access token lacks the scope this server needs",
    "403": "the access token lacks the scope this server needs",
    "invalid_request": "the server could not read the sign-in request",
    "400": "the server could not read the sign-in request",
}


def choose_mechanism(offered: Iterable[str]) -> Mechanism | None:
    """The OAuth2 mechanism to use among the server's ``AUTH=`` capabilities (IMAP) or
    AUTH keywords (SMTP), or None when it offers neither.

    >>> choose_mechanism(["IMAP4rev1", "AUTH=PLAIN", "AUTH=XOAUTH2"])
    'XOAUTH2'
    >>> choose_mechanism(["LOGIN", "XOAUTH2", "OAUTHBEARER"])
    'OAUTHBEARER'
    >>> choose_mechanism(["AUTH=PLAIN"]) is None
    True
    """
    names = {item.upper().removeprefix("AUTH=") for item in offered}
    return next((mechanism for mechanism in PREFERENCE if mechanism in names), None)


def initial_response(mechanism: Mechanism, username: str, token: str, host: str, port: int) -> bytes:
    r"""The client's first message, before base64.

    >>> initial_response("XOAUTH2", "ann@example.com", "T", "imap.example.com", 993)
    b'user=ann@example.com\x01auth=Bearer T\x01\x01'
    >>> initial_response("OAUTHBEARER", "a,b=c", "T", "imap.example.com", 993)
    b'n,a=a=2Cb=3Dc,\x01host=imap.example.com\x01port=993\x01auth=Bearer T\x01\x01'
    """
    if any(char in token for char in "\x01\r\n ") or not token:
        raise ValueError("an access token is a single non-empty word")
    if mechanism == "XOAUTH2":
        return f"user={username}\x01auth=Bearer {token}\x01\x01".encode()
    # RFC 5801 §4 saslname: "," and "=" are escaped in the authorization identity.
    identity = username.replace("=", "=3D").replace(",", "=2C")
    return f"n,a={identity},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01".encode()


def describe_refusal(challenge: bytes) -> str:
    """A server's error challenge (JSON, or its base64) in words, without echoing arbitrary bytes.

    >>> describe_refusal(b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}')
    'the access token is invalid, expired or revoked (status 401; the server wants scope https://mail.google.com/)'
    >>> describe_refusal(base64.b64encode(b'{"status":"invalid_token"}'))
    'the access token is invalid, expired or revoked (status invalid_token)'
    >>> describe_refusal(b"not json")
    'the server refused the access token'
    """
    details = _challenge_json(challenge)
    if details is None:
        return "the server refused the access token"
    status = str(details.get("status", "")).strip()[:40]
    meaning = _STATUS_MEANING.get(status, "the server refused the access token")
    notes = [f"status {status}"] if status else []
    scope = details.get("scope")
    if isinstance(scope, str) and scope.strip():
        notes.append(f"the server wants scope {scope.strip()[:200]}")
    return meaning + (f" ({'; '.join(notes)})" if notes else "")


def _challenge_json(challenge: bytes) -> dict[str, object] | None:
    for candidate in (challenge, _unbase64(challenge)):
        if candidate is None:
            continue
        try:
            value = json.loads(candidate.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(value, dict):
            return value
    return None


def _unbase64(data: bytes) -> bytes | None:
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass
class SaslExchange:
    """The client side of one exchange: the initial response first, then a dummy answer
    to an error challenge, which it keeps in ``refusal``.  ``repr`` never shows the token."""

    mechanism: Mechanism
    first: bytes = field(repr=False)
    refusal: str | None = None
    _sent: bool = field(default=False, repr=False)

    def respond(self, challenge: bytes | None) -> bytes:
        if not self._sent:
            self._sent = True
            return self.first
        self.refusal = describe_refusal(challenge or b"")
        return b"\x01" if self.mechanism == "OAUTHBEARER" else b""

    # imaplib calls the object with the decoded challenge and base64-encodes what it returns.
    __call__ = respond

    def smtp(self, challenge: bytes | None = None) -> str:
        """smtplib's authobject: called without a challenge for the initial response."""
        return self.respond(challenge).decode("ascii")
