"""A loopback SMTP server that records what it is sent, for reply and redirect tests."""

from __future__ import annotations

import threading
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


class RecordingSMTP:
    """An aiosmtpd server on 127.0.0.1 keeping every message it accepts in ``messages``.

    With ``credentials=(user, password)`` it requires AUTH (PLAIN/LOGIN, allowed without
    TLS on loopback) and refuses mail from clients that didn't log in.  ``stop()`` makes
    it unreachable, to test a mail server that is down; ``start()`` brings it back on the
    same port.  ``smtputf8=True`` offers SMTPUTF8 (RFC 6531), which aiosmtpd leaves off by default.
    """

    def __init__(self, *, credentials: tuple[str, str] | None = None, smtputf8: bool = False):
        self.refusals: dict[str, str] = {}  # recipient -> the reply RCPT gets instead of 250
        self.host = "127.0.0.1"
        self.port = free_port()
        self.credentials = credentials
        self.smtputf8 = smtputf8
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    def __enter__(self) -> RecordingSMTP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> RecordingSMTP:
        if self._controller is None:
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
        if self.credentials is None:
            return {}
        return {"auth_require_tls": False, "authenticator": self._authenticate}

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        expected = tuple(part.encode() for part in self.credentials or ())
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == expected
        return AuthResult(success=ok, handled=False)
