"""The mailbox and the SMTP sender an account's settings describe.

The one place that turns accounts.yaml settings into live backends, so the commands,
``mailrules auth`` and the tests open them alike.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mailrules.errors import ConfigurationError

if TYPE_CHECKING:
    from mailrules.accounts import Account
    from mailrules.backends.base import Mailbox
    from mailrules.smtp import SmtpSender


def open_mailbox(account: Account, verbose: int, state_dir: Path | None = None) -> Mailbox:
    if account.maildir is not None:
        from mailrules.backends.maildir import MaildirMailbox

        return MaildirMailbox(account.maildir)
    if account.imap is None:
        raise ConfigurationError(f"account {account.name!r} has neither imap nor maildir settings")
    from mailrules.accounts import resolve_password
    from mailrules.backends.imap import ImapMailbox

    settings = account.imap
    trace = (lambda line: print(f"imap> {line}", file=sys.stderr)) if verbose else None
    if settings.oauth2 is not None:
        from mailrules.oauth.tokens import token_source

        tokens = token_source(settings.oauth2, state_dir or _default_state_dir())
        return ImapMailbox(host=settings.host, port=settings.port, tls=settings.tls, username=settings.username,
                           oauth2=tokens, ca_file=settings.ca_file, trace=trace)
    return ImapMailbox(host=settings.host, port=settings.port, tls=settings.tls, username=settings.username,
                       password=resolve_password(settings), ca_file=settings.ca_file, trace=trace)


def open_sender(account: Account, state_dir: Path | None = None) -> SmtpSender | None:
    if account.smtp is None:
        return None
    from mailrules.accounts import resolve_password
    from mailrules.smtp import SmtpSender

    smtp = account.smtp
    if smtp.oauth2 is not None:
        from mailrules.oauth.tokens import token_source

        tokens = token_source(smtp.oauth2, state_dir or _default_state_dir())
        return SmtpSender(host=smtp.host, port=smtp.port, tls=smtp.tls, username=smtp.username, oauth2=tokens,
                          ca_file=smtp.ca_file)
    password = resolve_password(smtp) if smtp.username else None
    from mailrules.errors import register_secret

    register_secret(password)
    return SmtpSender(host=smtp.host, port=smtp.port, tls=smtp.tls, username=smtp.username, password=password,
                      ca_file=getattr(smtp, "ca_file", None))


def _default_state_dir() -> Path:
    from mailrules.state import default_state_path

    return default_state_path().parent
