"""How the benchmark invokes each tool: command lines and environment per phase.

Phases: ``dry-run`` (``mailrules plan`` / ``imapfilter -n``), ``run`` (the first real
run over the whole mailbox) and ``rerun`` (a second run with nothing new:
``mailrules run --new-only``; imapfilter has no state, so it simply runs again).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol, TypeAlias

from benchmarks.reference import Semantics

Phase: TypeAlias = Literal["dry-run", "run", "rerun"]
PHASES: tuple[Phase, ...] = ("dry-run", "run", "rerun")
BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
IMAPFILTER = "/usr/bin/imapfilter"


@dataclass(frozen=True, slots=True)
class Server:
    """Where the tools connect and who they log in as."""

    host: str
    port: int
    username: str
    password: str


class Tool(Protocol):
    name: str
    semantics: Semantics

    def command(self, phase: Phase, now: datetime) -> list[str]: ...

    def environment(self) -> dict[str, str]: ...

    def forget(self) -> None:
        """Drop whatever the tool remembers between runs (before a fresh first run)."""

    def version(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Mailrules:
    server: Server
    work: Path
    rules: Path = BENCH_DIR / "rules.yaml"
    python: str = sys.executable
    name: str = "mailrules"
    semantics: Semantics = "spec"

    @property
    def accounts_file(self) -> Path:
        return self.work / "accounts.yaml"

    @property
    def state_file(self) -> Path:
        return self.work / "state.sqlite3"

    def write_accounts(self) -> None:
        server = self.server
        self.accounts_file.write_text(
            "accounts:\n  bench:\n"
            f"    imap: {{host: {server.host}, port: {server.port}, tls: none, username: {server.username},"
            " password_env: BENCH_PASSWORD}\n"
            "    addresses: [u@example.com]\n")

    def command(self, phase: Phase, now: datetime) -> list[str]:
        # --now pins the clock the reference classifier uses for the exact older_than cut-off.
        common = [str(self.rules), "--accounts", str(self.accounts_file), "--account", "bench",
                  "--state", str(self.state_file), "--now", now.isoformat()]
        head = [self.python, "-m", "mailrules"]
        if phase == "dry-run":
            return [*head, "plan", *common]
        return [*head, "run", *common, "--yes", *(["--new-only"] if phase == "rerun" else [])]

    def environment(self) -> dict[str, str]:
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        return {**os.environ, "PYTHONPATH": path, "BENCH_PASSWORD": self.server.password}

    def forget(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.state_file}{suffix}").unlink(missing_ok=True)

    def version(self) -> str:
        revision = _output(["git", "-C", str(REPO), "describe", "--always", "--dirty"], self.environment())
        return f"{_output([self.python, '-m', 'mailrules', '--version'], self.environment())} (git {revision})"


@dataclass(frozen=True, slots=True)
class Imapfilter:
    server: Server
    work: Path
    config: Path = BENCH_DIR / "imapfilter" / "config.lua"
    binary: str = IMAPFILTER
    name: str = "imapfilter"
    semantics: Semantics = "imapfilter"

    def command(self, phase: Phase, now: datetime) -> list[str]:
        return [self.binary, *(["-n"] if phase == "dry-run" else []), "-c", str(self.config)]

    def environment(self) -> dict[str, str]:
        home = self.work / "imapfilter-home"
        home.mkdir(exist_ok=True)
        server = self.server
        return {**os.environ, "IMAPFILTER_HOME": str(home), "BENCH_HOST": server.host,
                "BENCH_PORT": str(server.port), "BENCH_USER": server.username, "BENCH_PASSWORD": server.password}

    def forget(self) -> None:
        """imapfilter keeps no state between runs."""

    def version(self) -> str:
        return _output([self.binary, "-V"], self.environment())


def _output(argv: list[str], env: dict[str, str]) -> str:
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    except OSError as exc:
        return f"unavailable ({exc})"
    text = (proc.stdout or proc.stderr).strip()
    # imapfilter -V appends a copyright notice after two spaces
    return text.splitlines()[0].split("  ")[0] if text else f"unknown (exit {proc.returncode})"
