"""OAuth2 sign-in against a real Dovecot (oauth2 passdb) and a real SMTP server (aiosmtpd).

The OAuth2 provider is the only thing faked: a small HTTP server on loopback that issues
tokens (authorization code with PKCE, device code, refresh) and answers Dovecot's token
introspection, so Dovecot accepts exactly the access tokens it issued and has not revoked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.support.dovecot import Dovecot, User, require_dovecot
from tests.support.smtp import RecordingSMTP
from tests.support.workspace import CliResult, make_message, run_cli

keyring = pytest.importorskip("keyring")
pytest.importorskip("authlib")

# Every test here signs in to the private Dovecot that the module starts.
pytestmark = pytest.mark.dovecot
from keyring.backend import KeyringBackend  # noqa: E402
from keyring.backends import fail  # noqa: E402

RULES = """\
version: 1
rules:
  - name: archive-reports
    when: {subject: report}
    then: [{move: Reports}]
"""

REPLY_RULES = """\
version: 1
rules:
  - name: support
    when: {subject: ticket}
    then:
      - reply: {subject: "Re: {{ message.subject }}", body: "Received.\\n", from: support@example.com}
"""


# ---------------------------------------------------------------- the fake OAuth2 provider


@dataclass
class FakeProvider:
    """Tokens issued, by value -> user; every request kept (path, form) for the assertions."""

    access: dict[str, str] = field(default_factory=dict)
    refresh: dict[str, str] = field(default_factory=dict)
    codes: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # code -> user, challenge, redirect_uri
    devices: dict[str, list[object]] = field(default_factory=dict)  # device_code -> [user, polls before approval]
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    signing_in: str = ""  # the user who "approves" in the browser
    rotate: bool = False
    deny: bool = False  # the user declines in the browser
    down: bool = False  # the token endpoint answers 503
    url: str = ""

    def issue(self, user: str) -> dict[str, object]:
        access, refresh = "at-" + secrets.token_urlsafe(16), "rt-" + secrets.token_urlsafe(16)
        self.access[access], self.refresh[refresh] = user, user
        return {"access_token": access, "token_type": "Bearer", "expires_in": 3600, "refresh_token": refresh}

    def revoke_all(self) -> None:
        self.access.clear()
        self.refresh.clear()

    def grants(self, kind: str) -> list[dict[str, str]]:
        return [form for path, form in self.requests if path == "/token" and form.get("grant_type") == kind]

    def handle(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, object], str | None]:
        self.requests.append((path, form))
        if path == "/introspect":  # Dovecot asks about a token a client presented
            user = self.access.get(form.get("token", ""))
            return 200, ({"active": True, "username": user} if user else {"active": False}), None
        if path == "/authorize":
            if form.get("code_challenge_method") != "S256" or not form.get("code_challenge"):
                return 400, {"error": "invalid_request", "error_description": "PKCE required"}, None
            if self.deny:
                query = urlencode({"error": "access_denied", "state": form.get("state", "")})
                return 302, {}, f"{form['redirect_uri']}?{query}"
            code = secrets.token_urlsafe(8)
            self.codes[code] = (self.signing_in, form["code_challenge"], form["redirect_uri"])
            query = urlencode({"code": code, "state": form.get("state", "")})
            return 302, {}, f"{form['redirect_uri']}?{query}"
        if path == "/device":
            device = secrets.token_urlsafe(8)
            self.devices[device] = [self.signing_in, 1]
            return 200, {"device_code": device, "user_code": "WDJB-MJHT", "verification_uri": self.url + "/activate",
                         "expires_in": 60, "interval": 1}, None
        if path == "/token" and self.down:
            return 503, {}, None
        if path == "/token":
            return self.token(form)
        return 404, {"error": "not_found"}, None

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, object], str | None]:
        grant = form.get("grant_type")
        if form.get("client_id") != "test-client":
            return 401, {"error": "invalid_client"}, None
        if grant == "authorization_code":
            user, challenge, redirect_uri = self.codes.pop(form.get("code", ""), ("", "", ""))
            verifier = form.get("code_verifier", "")
            computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not user or computed != challenge or form.get("redirect_uri") != redirect_uri:
                return 400, {"error": "invalid_grant", "error_description": "bad code or verifier"}, None
            return 200, self.issue(user), None
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            entry = self.devices.get(form.get("device_code", ""))
            if entry is None:
                return 400, {"error": "expired_token"}, None
            if int(entry[1]) > 0:  # type: ignore[call-overload]
                entry[1] = int(entry[1]) - 1  # type: ignore[call-overload]
                return 400, {"error": "authorization_pending"}, None
            del self.devices[form["device_code"]]
            return 200, self.issue(str(entry[0])), None
        if grant == "refresh_token":
            user = self.refresh.get(form.get("refresh_token", ""))
            if user is None:
                return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}, None
            issued = self.issue(user)
            if self.rotate:
                del self.refresh[form["refresh_token"]]
            else:
                del self.refresh[str(issued["refresh_token"])]
                del issued["refresh_token"]
            return 200, issued, None
        return 400, {"error": "unsupported_grant_type"}, None


def serve(provider: FakeProvider) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.answer({k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()})

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            self.answer({k: v[0] for k, v in parse_qs(body).items()})

        def answer(self, form: dict[str, str]) -> None:
            status, body, location = provider.handle(urlsplit(self.path).path, form)
            data = json.dumps(body).encode()
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    provider.url = f"http://127.0.0.1:{server.server_address[1]}"
    return server


def oauth_dovecot(provider: FakeProvider, mechanisms: str = "xoauth2 oauthbearer") -> Dovecot:
    """A private Dovecot whose oauth2 passdb asks ``provider`` about each token (introspection_mode = post)."""
    server = Dovecot()
    conf = server.root / "oauth2.conf"
    conf.write_text(f"introspection_mode = post\nintrospection_url = {provider.url}/introspect\n"
                    "username_attribute = username\nactive_attribute = active\nactive_value = true\n")
    conf.chmod(0o644)
    server.extra_config = (f"auth_mechanisms = plain login {mechanisms}\n"
                           f"passdb {{\n  driver = oauth2\n  mechanisms = {mechanisms}\n  args = {conf}\n}}\n")
    return server.start()


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    server = serve(fake)
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def server(provider: FakeProvider) -> Iterator[Dovecot]:
    require_dovecot()
    dovecot = oauth_dovecot(provider)
    yield dovecot
    dovecot.stop()


@pytest.fixture
def user(server: Dovecot, provider: FakeProvider) -> User:
    made = server.add_user()
    provider.signing_in = made.username
    return made


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    before = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(before)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(before)


# ---------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Space:
    root: Path
    user: User

    @property
    def accounts(self) -> Path:
        return self.root / "accounts.yaml"

    @property
    def state(self) -> Path:
        return self.root / "state" / "state.sqlite3"

    def write(self, imap_oauth2: str, rules: str = RULES, extra: str = "") -> Space:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "rules.yaml").write_text(rules)
        self.accounts.write_text(
            "accounts:\n  t:\n"
            f"    imap: {{host: {self.user.host}, port: {self.user.port}, tls: none, username: {self.user.username},"
            f" oauth2: {imap_oauth2}}}\n"
            f"    addresses: [{self.user.username}@example.com]\n" + extra)
        return self

    def cli(self, command: str, *extra: str) -> CliResult:
        return run_cli([command, str(self.root / "rules.yaml"), "--accounts", str(self.accounts), "--account", "t",
                        "--state", str(self.state), "--now", "2026-11-20T10:00:00Z", *extra])

    def auth(self) -> CliResult:
        return run_cli(["auth", "t", "--accounts", str(self.accounts), "--state", str(self.state)])


def token_command(tmp_path: Path, output: str, status: int = 0) -> str:
    script = tmp_path / "token.py"
    script.write_text(f"import sys\nsys.stdout.write({output!r})\nsys.stderr.write('token tool says no\\n' "
                      f"if {status} else '')\nsys.exit({status})\n")
    return json.dumps(f"{sys.executable} {script}")


def custom_provider(provider: FakeProvider, grant: str) -> str:
    endpoint = "authorization_url" if grant == "loopback" else "device_authorization_url"
    path = "/authorize" if grant == "loopback" else "/device"
    return (f"{{provider: custom, client_id: test-client, token_url: '{provider.url}/token', "
            f"{endpoint}: '{provider.url}{path}', scopes: [mail, offline_access]}}")


def assert_no_secret(provider: FakeProvider, *texts: str) -> None:
    for secret in list(provider.access) + list(provider.refresh):
        for text in texts:
            assert secret not in text


def browser_that_approves(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stands in for the user's browser: follows the sign-in address (and its redirect) in the background."""
    import requests

    opened: list[str] = []

    def visit(url: str) -> None:
        opened.append(url)
        threading.Thread(target=requests.get, args=(url,), kwargs={"timeout": 10}, daemon=True).start()

    monkeypatch.setattr("mailrules.oauth.grants.open_browser", visit)
    return opened


# ---------------------------------------------------------------- token_command


def test_a_token_command_signs_in_to_imap(tmp_path: Path, server: Dovecot, user: User,
                                          provider: FakeProvider) -> None:
    access = str(provider.issue(user.username)["access_token"])
    server.deliver(user, make_message("weekly report"))
    space = Space(tmp_path, user).write(f"{{token_command: {token_command(tmp_path, access + chr(10))}}}")
    result = space.cli("run", "-v")
    assert result.code == 0, result.output
    assert "AUTHENTICATE OAUTHBEARER ****" in result.stderr
    assert [p for p, form in provider.requests if p == "/introspect" and form.get("token") == access]
    assert list((user.maildir / ".Reports" / "cur").iterdir()) or list((user.maildir / ".Reports" / "new").iterdir())
    assert_no_secret(provider, result.output, space.state.read_bytes().decode("latin-1"))


def test_a_server_offering_only_xoauth2_gets_xoauth2(tmp_path: Path, provider: FakeProvider) -> None:
    require_dovecot()
    with oauth_dovecot(provider, mechanisms="xoauth2") as only_xoauth2:
        user = only_xoauth2.add_user()
        access = str(provider.issue(user.username)["access_token"])
        space = Space(tmp_path, user).write(f"{{token_command: {token_command(tmp_path, access)}}}")
        result = space.cli("plan", "-v")
    assert result.code == 0, result.output
    assert "AUTHENTICATE XOAUTH2 ****" in result.stderr


@pytest.mark.parametrize("whose", ["revoked", "another user's"])
def test_a_refused_access_token_is_a_clear_permanent_error(tmp_path: Path, server: Dovecot, user: User,
                                                           provider: FakeProvider, whose: str) -> None:
    if whose == "revoked":
        access = "at-revoked-" + secrets.token_urlsafe(8)
    else:
        access = str(provider.issue("someone-else")["access_token"])
    space = Space(tmp_path, user).write(f"{{token_command: {token_command(tmp_path, access)}}}")
    result = space.cli("plan")
    assert result.code == 6, result.output
    assert (f"IMAP server {user.host}:{user.port} refused the OAuth2 sign-in of {user.username} (OAUTHBEARER): "
            "the access token is invalid, expired or revoked (status invalid_token)") in result.stderr
    assert access not in result.output


@pytest.mark.parametrize(("output", "status", "message"), [
    ("", 0, "oauth2 token_command '{exe}' printed no access token"),
    ("at-x\n", 3, "oauth2 token_command '{exe}' failed with exit status 3: token tool says no"),
])
def test_a_token_command_that_fails_names_the_account(tmp_path: Path, server: Dovecot, user: User,
                                                      output: str, status: int, message: str) -> None:
    space = Space(tmp_path, user).write(f"{{token_command: {token_command(tmp_path, output, status)}}}")
    result = space.cli("plan")
    assert result.code == 6, result.output
    assert "account 't': " + message.format(exe=sys.executable) in result.stderr


# ---------------------------------------------------------------- built-in sign-in and refresh


def test_loopback_sign_in_with_pkce_then_silent_refresh(tmp_path: Path, server: Dovecot, user: User,
                                                        provider: FakeProvider, memory_keyring: MemoryKeyring,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    opened = browser_that_approves(monkeypatch)
    space = Space(tmp_path, user).write(custom_provider(provider, "loopback"))
    signed_in = space.auth()
    assert signed_in.code == 0, signed_in.output
    assert opened and "code_challenge_method=S256" in opened[0] and "redirect_uri=http%3A%2F%2F127.0.0.1" in opened[0]
    stored = memory_keyring.items[("mailrules:oauth2", "t")]
    assert provider.refresh[stored] == user.username
    assert "stored in the system keyring (MemoryKeyring" in signed_in.stdout
    assert (f"checked: the IMAP server {user.host}:{user.port} accepts the sign-in of {user.username}"
            in signed_in.stdout)
    assert not (space.state.parent / "oauth2").exists()

    refreshes = len(provider.grants("refresh_token"))
    server.deliver(user, make_message("monthly report"))
    first, second = space.cli("run", "-vv"), space.cli("plan", "--json")
    assert (first.code, second.code) == (0, 0), first.output + second.output
    assert len(provider.grants("refresh_token")) == refreshes + 2  # each run, without anyone signing in again
    assert "AUTHENTICATE OAUTHBEARER ****" in first.stderr
    written = [path.read_bytes().decode("latin-1") for path in space.state.parent.rglob("*") if path.is_file()]
    assert written, "the state database was written and searched"
    assert_no_secret(provider, signed_in.output, first.output, second.output, *written)


def test_device_code_sign_in_without_a_keyring_uses_a_private_file(tmp_path: Path, server: Dovecot, user: User,
                                                                   provider: FakeProvider, no_keyring: None) -> None:
    provider.rotate = True
    try:
        space = Space(tmp_path, user).write(custom_provider(provider, "device"))
        signed_in = space.auth()
        assert signed_in.code == 0, signed_in.output
        assert f"open {provider.url}/activate in any browser and enter the code WDJB-MJHT" in signed_in.stdout
        assert len(provider.grants("urn:ietf:params:oauth:grant-type:device_code")) >= 2  # polled while pending
        file = space.state.parent / "oauth2" / "t.json"
        assert f"stored in {file}, readable only by you (no system keyring was found)" in signed_in.stdout
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        assert stat.S_IMODE(file.parent.stat().st_mode) == 0o700
        before = json.loads(file.read_text())["refresh_token"]

        result = space.cli("plan")
        assert result.code == 0, result.output
        rotated = json.loads(file.read_text())["refresh_token"]
        assert rotated != before and provider.refresh[rotated] == user.username  # the rotated one was kept
        assert space.cli("plan").code == 0
    finally:
        provider.rotate = False


def test_a_revoked_refresh_token_says_to_sign_in_again(tmp_path: Path, server: Dovecot, user: User,
                                                       provider: FakeProvider, memory_keyring: MemoryKeyring,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    browser_that_approves(monkeypatch)
    space = Space(tmp_path, user).write(custom_provider(provider, "loopback"))
    assert space.auth().code == 0
    stored = memory_keyring.items[("mailrules:oauth2", "t")]
    del provider.refresh[stored]
    result = space.cli("plan")
    assert result.code == 6, result.output
    assert ("refused the stored refresh token (invalid_grant: Token has been expired or revoked.); "
            "it was revoked or has expired: run `mailrules auth t` again") in result.stderr
    assert stored not in result.output


def test_a_token_endpoint_that_is_down_is_transient(tmp_path: Path, server: Dovecot, user: User,
                                                    provider: FakeProvider, memory_keyring: MemoryKeyring,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    browser_that_approves(monkeypatch)
    space = Space(tmp_path, user).write(custom_provider(provider, "loopback"))
    assert space.auth().code == 0
    provider.down = True
    try:
        result = space.cli("plan")
    finally:
        provider.down = False
    assert result.code == 3, result.output
    assert "account 't': token endpoint 127.0.0.1:" in result.stderr and "answered HTTP 503" in result.stderr
    assert space.cli("plan").code == 0  # the stored refresh token still works once it is back


def test_declining_in_the_browser_is_a_clear_error(tmp_path: Path, server: Dovecot, user: User,
                                                  provider: FakeProvider, memory_keyring: MemoryKeyring,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    browser_that_approves(monkeypatch)
    provider.deny = True
    try:
        result = Space(tmp_path, user).write(custom_provider(provider, "loopback")).auth()
    finally:
        provider.deny = False
    assert result.code == 6, result.output
    assert ("account 't': the provider did not sign you in (access_denied); run `mailrules auth t` again"
            in result.stderr)
    assert memory_keyring.items == {}


def test_an_account_never_signed_in_says_how(tmp_path: Path, server: Dovecot, user: User,
                                             provider: FakeProvider, no_keyring: None) -> None:
    result = Space(tmp_path, user).write(custom_provider(provider, "device")).cli("plan")
    assert result.code == 6, result.output
    assert "account 't' is not signed in to custom: run `mailrules auth t` first" in result.stderr


# ---------------------------------------------------------------- SMTP


@pytest.mark.parametrize("mechanisms", [("XOAUTH2",), ("XOAUTH2", "OAUTHBEARER")])
def test_replies_go_out_over_smtp_signed_in_with_oauth2(tmp_path: Path, server: Dovecot, user: User,
                                                        provider: FakeProvider, memory_keyring: MemoryKeyring,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        mechanisms: tuple[str, ...]) -> None:
    browser_that_approves(monkeypatch)
    with RecordingSMTP(oauth2_tokens=provider.access, mechanisms=mechanisms) as smtp:
        space = Space(tmp_path, user).write(
            custom_provider(provider, "loopback"), rules=REPLY_RULES,
            extra=f"    smtp: {{host: {smtp.host}, port: {smtp.port}, tls: none, username: {user.username}, "
                  "oauth2: true}\n")
        assert space.auth().code == 0
        server.deliver(user, make_message("ticket 42", to=f"{user.username}@example.com"))
        result = space.cli("run")
        assert result.code == 0, result.output
        assert [m.rcpt_tos for m in smtp.messages] == [("someone@example.net",)]
    assert_no_secret(provider, result.output)


def test_smtp_refusing_the_token_says_what_the_server_said(tmp_path: Path, server: Dovecot, user: User,
                                                           provider: FakeProvider) -> None:
    access = str(provider.issue(user.username)["access_token"])
    with RecordingSMTP(oauth2_tokens={}, mechanisms=("XOAUTH2",)) as smtp:
        space = Space(tmp_path, user).write(
            f"{{token_command: {token_command(tmp_path, access)}}}", rules=REPLY_RULES,
            extra=f"    smtp: {{host: {smtp.host}, port: {smtp.port}, tls: none, username: {user.username}, "
                  "oauth2: true}\n")
        server.deliver(user, make_message("ticket 43", to=f"{user.username}@example.com"))
        result = space.cli("run")
        assert smtp.messages == []
    assert result.code == 1, result.output
    assert (f"refused the OAuth2 sign-in of '{user.username}' (XOAUTH2): the access token is invalid, "
            "expired or revoked (status 401; the server wants scope smtp)") in result.output
    assert access not in result.output
