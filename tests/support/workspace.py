"""Running ``mailrules`` in-process against a test account, and reading back what it did."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from datetime import datetime, timezone
from pathlib import Path

from tests.support.cli import CliResult, run_cli  # noqa: F401 - re-exported for the integration tests
from tests.support.dovecot import Dovecot, User

PASSWORD_ENV = "MAILRULES_TEST_PASSWORD"


def accounts_yaml(user: User, *, host: str | None = None, port: int | None = None, tls: str = "none",
                  ca_file: Path | None = None, name: str = "t", extra: str = "") -> str:
    ca = f", ca_file: {ca_file}" if ca_file is not None else ""
    return (
        "accounts:\n"
        f"  {name}:\n"
        f"    imap: {{host: {host or user.host}, port: {port or user.port}, tls: {tls}, "
        f"username: {user.username}, password_env: {PASSWORD_ENV}{ca}}}\n"
        f"    addresses: [{user.username}@example.com]\n" + extra
    )


@dataclass(frozen=True, slots=True)
class Workspace:
    """The files one account's runs need: rules, accounts and state, in a directory of their own."""

    root: Path
    user: User

    @property
    def rules(self) -> Path:
        return self.root / "rules.yaml"

    @property
    def accounts(self) -> Path:
        return self.root / "accounts.yaml"

    @property
    def state(self) -> Path:
        return self.root / "state.sqlite3"

    def write_rules(self, text: str) -> Workspace:
        self.rules.write_text(text)
        return self

    def args(self, command: str, *extra: str) -> list[str]:
        return [command, str(self.rules), "--accounts", str(self.accounts), "--account", "t",
                "--state", str(self.state), *extra]

    def plan(self, *extra: str) -> CliResult:
        return run_cli(self.args("plan", *extra))

    def run(self, *extra: str) -> CliResult:
        return run_cli(self.args("run", *extra))


def workspace(root: Path, user: User, rules_text: str, **account_options: object) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    os.environ[PASSWORD_ENV] = user.password
    space = Workspace(root, user).write_rules(rules_text)
    space.accounts.write_text(accounts_yaml(user, **account_options))  # type: ignore[arg-type]
    return space


def make_message(subject: str, sender: str = "Someone <someone@example.net>", to: str = "user@example.com",
                 body: str = "Hello.\n", *, message_id: str | None = None, date: datetime | None = None,
                 headers: dict[str, str] | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(date or datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc))
    digest = hashlib.sha256(f"{subject}|{sender}|{body}".encode()).hexdigest()[:20]
    message["Message-ID"] = message_id or f"<{digest}@test.example>"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return bytes(message)


Snapshot = dict[str, Counter[tuple[str, tuple[str, ...]]]]


def snapshot(server: Dovecot, user: User) -> Snapshot:
    """Every folder's messages as a multiset of (Message-ID, flags); read with PEEK, changing nothing."""
    folders: Snapshot = {}
    with server.client(user) as imap:
        for flags, _delimiter, name in imap.list_folders():
            if {flag.lower() for flag in flags} & {b"\\noselect", b"\\nonexistent"}:
                continue  # a parent that holds no messages
            imap.select_folder(name, readonly=True)
            uids = imap.search()
            data = imap.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]) if uids else {}
            folders[name] = Counter(_entry(item) for item in data.values())
    return {name: content for name, content in folders.items() if content}


def _entry(item: dict[bytes, object]) -> tuple[str, tuple[str, ...]]:
    header = next(value for key, value in item.items() if key.startswith(b"BODY"))
    message_id = header.decode().split(":", 1)[-1].strip() if header else ""  # type: ignore[union-attr]
    flags = tuple(sorted(flag.decode() for flag in item[b"FLAGS"] if flag != b"\\Recent"))  # type: ignore[union-attr]
    return message_id, flags


def message_ids(shot: Snapshot) -> dict[str, set[str]]:
    return {folder: {mid for mid, _ in content} for folder, content in shot.items()}
