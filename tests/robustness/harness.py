"""Shared helpers of the robustness tests: quick servers, workspaces, and the CLI run in-process."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.cli import CliResult, run_cli, threads_output  # noqa: F401 - used by the robustness tests
from tests.support.dovecot import Dovecot, User

PASSWORD_ENV = "MAILRULES_ROBUSTNESS_PASSWORD"
FAST_SCRATCH = Path("/dev/shm")


class QuickDovecot(Dovecot):
    """A test Dovecot for sweeps of hundreds of short runs: it never fsyncs (no test survives
    a power cut anyway) and keeps no rawlog (the fault proxy counts commands instead), so the
    runs don't wait on the disk."""

    def config_text(self) -> str:
        kept = [line for line in super().config_text().splitlines() if not line.strip().startswith("rawlog_dir")]
        return "\n".join(kept) + "\nmail_fsync = never\n"


def scratch_root(fallback: Path) -> Path:
    """Where many short-lived state databases go: memory when the machine has /dev/shm."""
    if FAST_SCRATCH.is_dir() and os.access(FAST_SCRATCH, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="mailrules-robustness-", dir=FAST_SCRATCH))
    return fallback


def accounts_yaml(host: str, port: int, username: str, *, tls: str = "none", ca_file: Path | None = None,
                  name: str = "t") -> str:
    ca = f", ca_file: {ca_file}" if ca_file is not None else ""
    return (
        "accounts:\n"
        f"  {name}:\n"
        f"    imap: {{host: {host}, port: {port}, tls: {tls}, username: {username}, password_env: {PASSWORD_ENV}{ca}}}\n"
        f"    addresses: [{username}@example.com]\n"
    )


@dataclass(frozen=True, slots=True)
class Workspace:
    """The files one ``mailrules run`` needs: rules, accounts and state, in a directory of their own."""

    root: Path
    rules: Path

    @property
    def accounts(self) -> Path:
        return self.root / "accounts.yaml"

    @property
    def state(self) -> Path:
        return self.root / "state.sqlite3"

    def point_at(self, host: str, port: int, user: User, **options: object) -> Workspace:
        self.accounts.write_text(accounts_yaml(host, port, user.username, **options))  # type: ignore[arg-type]
        return self

    def run_args(self, *extra: str, command: str = "run") -> list[str]:
        args = [command, str(self.rules), "--accounts", str(self.accounts), "--account", "t", "--state", str(self.state)]
        return args + (["--yes"] if command == "run" else []) + list(extra)


def workspace(root: Path, rules_text: str) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    rules = root / "rules.yaml"
    rules.write_text(rules_text)
    return Workspace(root, rules)
