"""A loopback SMTP server that records what it is sent, for reply and redirect tests."""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.dovecot import free_port


@dataclass(frozen=True, slots=True)
class Received:
    """One accepted message: the SMTP envelope and the bytes after DATA."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...] = ()


class _Recorder:
    def __init__(self, sink: list[Received], lock: threading.Lock, auth_required: bool,
                 refusals: dict[str, str]):
        self._sink = sink
        self._lock = lock
        self._auth_required = auth_required
        self._refusals = refusals

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        if address in self._refusals:
            return self._refusals[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          mail_options: list[str]) -> str:
        # Checked here rather than with aiosmtpd's auth_required, which warns on every
        # connection that AUTH without TLS is unsafe (true, but this is loopback).
        if self._auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd hook name)
        received = Received(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.original_content),
                            tuple(envelope.mail_options))
        with self._lock:
            self._sink.append(received)
        return "250 OK"


class _OAuth2Recorder(_Recorder):
    """Also accepts AUTH XOAUTH2 and OAUTHBEARER with the access tokens it is given (token -> user);
    a wrong token gets the JSON error challenge of RFC 7628 §3.2.2, then 535."""

    def __init__(self, sink: list[Received], lock: threading.Lock, tokens: Mapping[str, str],
                 refusals: dict[str, str]):
        super().__init__(sink, lock, auth_required=True, refusals=refusals)
        self._tokens = tokens
        self.attempts: list[str] = []

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:  # noqa: N802 (aiosmtpd hook name)
        return await self._bearer(server, args, "XOAUTH2", r"^user=([^\x01]*)\x01auth=Bearer ([^\x01]+)\x01\x01$")

    async def auth_OAUTHBEARER(self, server: Any, args: list[str]) -> AuthResult:  # noqa: N802
        return await self._bearer(server, args, "OAUTHBEARER",
                                  r"^n,a=([^,]*),\x01(?:[a-z]+=[^\x01]*\x01)*?auth=Bearer ([^\x01]+)\x01\x01$")

    async def _bearer(self, server: Any, args: list[str], mechanism: str, pattern: str) -> AuthResult:
        self.attempts.append(mechanism)
        try:
            text = base64.b64decode(args[1], validate=True).decode() if len(args) > 1 else ""
        except (binascii.Error, UnicodeDecodeError):
            text = ""
        found = re.match(pattern, text)
        user = found.group(1).replace("=2C", ",").replace("=3D", "=") if found else None
        if found and self._tokens.get(found.group(2)) == user:
            return AuthResult(success=True, handled=False)
        error = {"status": "invalid_token" if mechanism == "OAUTHBEARER" else "401", "scope": "smtp"}
        await server.challenge_auth(json.dumps(error))  # the client answers with a dummy line
        return AuthResult(success=False, handled=False)


class RecordingSMTP:
    """An aiosmtpd server on 127.0.0.1 keeping every message it accepts in ``messages``.

    With ``credentials=(user, password)`` it requires AUTH (PLAIN/LOGIN, allowed without
    TLS on loopback) and refuses mail from clients that didn't log in.  ``stop()`` makes
    it unreachable, to test a mail server that is down; ``start()`` brings it back on the
    same port.  ``smtputf8=True`` offers SMTPUTF8 (RFC 6531), which aiosmtpd leaves off by default.
    With ``oauth2_tokens={token: user}`` it requires AUTH XOAUTH2 or OAUTHBEARER (or only the
    ``mechanisms`` given) instead.
    """

    def __init__(self, *, credentials: tuple[str, str] | None = None, smtputf8: bool = False,
                 oauth2_tokens: Mapping[str, str] | None = None, mechanisms: tuple[str, ...] | None = None):
        self.refusals: dict[str, str] = {}  # recipient -> the reply RCPT gets instead of 250
        self.host = "127.0.0.1"
        self.port = free_port()
        self.credentials = credentials
        self.smtputf8 = smtputf8
        self.oauth2_tokens = oauth2_tokens
        self.mechanisms = mechanisms
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    def __enter__(self) -> RecordingSMTP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> RecordingSMTP:
        if self._controller is None:
            recorder: _Recorder
            if self.oauth2_tokens is not None:
                recorder = _OAuth2Recorder(self.messages, self._lock, self.oauth2_tokens, self.refusals)
            else:
                recorder = _Recorder(self.messages, self._lock, auth_required=self.credentials is not None,
                                     refusals=self.refusals)
            self._controller = Controller(recorder, hostname=self.host, port=self.port,
                                          enable_SMTPUTF8=self.smtputf8, **self._auth_options())
            self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.refusals.clear()

    def _auth_options(self) -> dict[str, Any]:
        if self.oauth2_tokens is not None:
            offered = self.mechanisms or ("XOAUTH2", "OAUTHBEARER")
            hidden = [m for m in ("XOAUTH2", "OAUTHBEARER", "PLAIN", "LOGIN") if m not in offered]
            return {"auth_require_tls": False, "authenticator": self._authenticate,
                    "auth_exclude_mechanism": hidden}
        if self.credentials is None:
            return {}
        return {"auth_require_tls": False, "authenticator": self._authenticate}

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        expected = tuple(part.encode() for part in self.credentials or ())
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == expected
        return AuthResult(success=ok, handled=False)
