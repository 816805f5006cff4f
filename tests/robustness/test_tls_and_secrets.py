"""Transport security and secrets.

A self-signed certificate is refused unless the account names it as ``ca_file``; an
account that requires STARTTLS never logs in to a server that doesn't offer it (no
LOGIN goes over the wire in plain text); and the password never appears in anything
mailrules prints or writes, whatever happens.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.robustness.harness import PASSWORD_ENV, CliResult, Workspace, run_cli, workspace
from tests.robustness.mailbox_state import read_state
from tests.support.dovecot import Dovecot, User
from tests.support.faultproxy import Cut, FaultProxy

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-11-20T10:00:00Z"
SECRET = "Zebra-Quokka-9431-sekr3t"
WRONG_SECRET = "Narwhal-Okapi-7718-wr0ng"

RULES = """\
version: 1
rules:
  - name: reports
    when: {subject: report}
    then: [{flag: seen}, {move: Reports}]
"""

REPORT = b"From: a@example.net\r\nTo: u@example.com\r\nSubject: report 1\r\nMessage-ID: <tls-1@example.net>\r\n\r\nbody\r\n"


@pytest.fixture
def tls_server(dovecot_factory: Callable[..., Dovecot]) -> Dovecot:
    return dovecot_factory(tls=True)


@pytest.fixture
def tls_user(tls_server: Dovecot, monkeypatch: pytest.MonkeyPatch) -> User:
    user = tls_server.add_user(password=SECRET)
    tls_server.deliver(user, REPORT)
    monkeypatch.setenv(PASSWORD_ENV, SECRET)
    return user


def assert_refused(result: CliResult, *words: str) -> None:
    assert result.code == 6, result.output  # a TLS setting to fix: running again won't help
    assert "Traceback" not in result.output
    for word in words:
        assert word.lower() in result.stderr.lower(), result.stderr


def moved(server: Dovecot, user: User) -> bool:
    return "Reports" in read_state(server, user).entries()


# ---------------------------------------------------------------- certificates


def test_a_self_signed_certificate_is_refused(tls_server: Dovecot, tls_user: User, tmp_path: Path) -> None:
    assert tls_server.tls_port is not None
    ws = workspace(tmp_path, RULES).point_at(tls_server.host, tls_server.tls_port, tls_user, tls="ssl")
    assert_refused(run_cli(ws.run_args("--now", NOW)), "certificate")
    assert not moved(tls_server, tls_user)


def test_the_certificate_named_as_ca_file_is_trusted(tls_server: Dovecot, tls_user: User, tmp_path: Path) -> None:
    assert tls_server.tls_port is not None
    ws = workspace(tmp_path, RULES).point_at(tls_server.host, tls_server.tls_port, tls_user, tls="ssl",
                                             ca_file=tls_server.cert_path)
    result = run_cli(ws.run_args("--now", NOW))
    assert result.code == 0, result.output
    assert moved(tls_server, tls_user)


def test_starttls_with_the_ca_file_works(tls_server: Dovecot, tls_user: User, tmp_path: Path) -> None:
    with FaultProxy(tls_server.host, tls_server.port) as proxy:
        ws = workspace(tmp_path, RULES).point_at(proxy.host, proxy.port, tls_user, tls="starttls",
                                                 ca_file=tls_server.cert_path)
        result = run_cli(ws.run_args("--now", NOW))
    assert result.code == 0, result.output
    assert moved(tls_server, tls_user)
    assert proxy.command_names()[-1] == "STARTTLS"  # everything after it is encrypted
    assert SECRET.encode() not in proxy.client_bytes()


def test_starttls_with_an_untrusted_certificate_is_refused_before_login(
        tls_server: Dovecot, tls_user: User, tmp_path: Path) -> None:
    with FaultProxy(tls_server.host, tls_server.port) as proxy:
        ws = workspace(tmp_path, RULES).point_at(proxy.host, proxy.port, tls_user, tls="starttls")
        assert_refused(run_cli(ws.run_args("--now", NOW)), "certificate")
    assert "LOGIN" not in proxy.command_names()
    assert SECRET.encode() not in proxy.client_bytes()


def test_starttls_required_but_not_offered_sends_no_login(dovecot: Dovecot, fresh_user: User, tmp_path: Path) -> None:
    with FaultProxy(dovecot.host, dovecot.port) as proxy:
        ws = workspace(tmp_path, RULES).point_at(proxy.host, proxy.port, fresh_user, tls="starttls")
        assert_refused(run_cli(ws.run_args("--now", NOW)), "STARTTLS")
    sent = proxy.client_bytes()
    assert not {"LOGIN", "AUTHENTICATE"} & set(proxy.command_names()), proxy.command_names()
    assert fresh_user.password.encode() not in sent and b"LOGIN" not in sent.upper()


def test_tls_against_a_plain_text_port_fails_clearly(dovecot: Dovecot, fresh_user: User, tmp_path: Path) -> None:
    ws = workspace(tmp_path, RULES).point_at(dovecot.host, dovecot.port, fresh_user, tls="ssl")
    result = run_cli(ws.run_args("--now", NOW))
    assert_refused(result)
    assert "mailrules: error:" in result.stderr


# ---------------------------------------------------------------- the password stays secret


def everything_written(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


def assert_secret_absent(secret: str, texts: dict[str, str | bytes]) -> None:
    needles = [secret.encode(), secret.encode("utf-16-le"), secret[::-1].encode()]
    for where, text in texts.items():
        data = text.encode() if isinstance(text, str) else text
        found = [needle for needle in needles if needle in data]
        assert not found, f"the password appears in {where}"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home directory of its own, so anything mailrules writes by default lands where it is searched."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    monkeypatch.setenv("XDG_STATE_HOME", str(path / ".local" / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(path / ".config"))
    return path


def login_number(server: Dovecot, user: User, ws: Workspace) -> tuple[int, CliResult]:
    """Which command of a session is LOGIN (counted by a proxy that cuts nothing), and that plan's result."""
    with FaultProxy(server.host, server.port) as proxy:
        result = run_cli(ws.point_at(proxy.host, proxy.port, user).run_args("--now", NOW, "-vv", command="plan"))
    return proxy.command_names().index("LOGIN") + 1, result


def secret_scenarios(server: Dovecot, user: User, ws: Workspace) -> dict[str, CliResult]:
    """Every way a run can go: verbose success, JSON, plan, wrong password, cut connections, bad TLS."""
    login, planned = login_number(server, user, ws)
    direct = ws.point_at(server.host, server.port, user)
    outcomes = {
        "plan -vv": planned,
        "run -v --json": run_cli(direct.run_args("--now", NOW, "-v", "--json")),
        "run -vv": run_cli(direct.run_args("--now", NOW, "-vv")),
    }
    for variant in ("before", "after", "mid_response"):
        with FaultProxy(server.host, server.port, cut=Cut(login, variant)) as proxy:  # type: ignore[arg-type]
            outcomes[f"login cut {variant}"] = run_cli(ws.point_at(proxy.host, proxy.port, user).run_args("-vv"))
    assert server.tls_port is not None
    outcomes["untrusted certificate"] = run_cli(
        ws.point_at(server.host, server.tls_port, user, tls="ssl").run_args("-vv"))
    return outcomes


def test_the_password_never_appears_in_output_or_files(
        tls_server: Dovecot, tls_user: User, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = workspace(tmp_path / "work", RULES)
    outcomes = secret_scenarios(tls_server, tls_user, ws)
    assert outcomes["run -vv"].code == 0 and moved(tls_server, tls_user)
    assert "LOGIN" in outcomes["run -vv"].stderr, "-vv shows the IMAP commands, so the check below means something"
    monkeypatch.setenv(PASSWORD_ENV, WRONG_SECRET)
    outcomes["wrong password"] = run_cli(ws.point_at(tls_server.host, tls_server.port, tls_user).run_args("-vv"))
    assert outcomes["wrong password"].code == 6, outcomes["wrong password"].output
    for secret in (SECRET, WRONG_SECRET):
        assert_secret_absent(secret, {f"{name} {stream}": getattr(result, stream)
                                      for name, result in outcomes.items() for stream in ("stdout", "stderr")})
        assert_secret_absent(secret, {str(path): data for path, data in everything_written(tmp_path).items()})
    assert (ws.state.exists() or any(ws.root.rglob("*.sqlite3*"))), "the state database was written and searched"


def test_the_password_never_appears_in_a_crashing_child(
        tls_server: Dovecot, tls_user: User, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a separate process (as users run it), stopped by a cut connection during LOGIN."""
    ws = workspace(tmp_path / "work", RULES)
    login, _ = login_number(tls_server, tls_user, ws)
    with FaultProxy(tls_server.host, tls_server.port, cut=Cut(login, "after")) as proxy:
        child = subprocess.run(
            [sys.executable, "-m", "mailrules", *ws.point_at(proxy.host, proxy.port, tls_user).run_args("-vv")],
            cwd=REPO, capture_output=True, timeout=60, env={**os.environ, PASSWORD_ENV: SECRET})
    assert child.returncode in (0, 3), child.stderr
    assert b"Traceback" not in child.stderr
    assert_secret_absent(SECRET, {"stdout": child.stdout, "stderr": child.stderr})
    assert_secret_absent(SECRET, {str(path): data for path, data in everything_written(tmp_path).items()})
