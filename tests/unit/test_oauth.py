"""OAuth2 pieces that need no server: SASL messages, refusals, settings, endpoints, the token store."""

from __future__ import annotations

import base64
import stat
import sys
from pathlib import Path

import pytest

from mailrules.accounts import OAuth2Settings, load_accounts
from mailrules.cli import main
from mailrules.errors import AuthenticationFailed, ConfigurationError, RuleFileError, StateStoreError, UsageError
from mailrules.oauth.sasl import SaslExchange, choose_mechanism, describe_refusal, initial_response
from mailrules.oauth.store import RefreshTokenStore
from mailrules.oauth.tokens import CommandTokens, endpoints, session

# ---------------------------------------------------------------- SASL


def test_xoauth2_and_oauthbearer_initial_responses() -> None:
    assert initial_response("XOAUTH2", "ann@example.com", "ya29.tok", "imap.gmail.com", 993) == (
        b"user=ann@example.com\x01auth=Bearer ya29.tok\x01\x01")
    # RFC 7628 §3.1 with the gs2 header of RFC 5801, host and port
    assert initial_response("OAUTHBEARER", "ann@example.com", "ya29.tok", "imap.gmail.com", 993) == (
        b"n,a=ann@example.com,\x01host=imap.gmail.com\x01port=993\x01auth=Bearer ya29.tok\x01\x01")


@pytest.mark.parametrize("token", ["", "two words", "line\nbreak", "ctrl\x01a"])
def test_a_token_that_would_break_the_message_is_refused(token: str) -> None:
    with pytest.raises(ValueError, match="single non-empty word"):
        initial_response("XOAUTH2", "ann", token, "h", 1)


@pytest.mark.parametrize(("offered", "chosen"), [
    (["IMAP4rev1", "SASL-IR", "AUTH=PLAIN", "AUTH=XOAUTH2", "AUTH=OAUTHBEARER"], "OAUTHBEARER"),
    (["IMAP4rev1", "AUTH=XOAUTH2"], "XOAUTH2"),  # Microsoft 365
    (["LOGIN", "PLAIN", "XOAUTH2"], "XOAUTH2"),  # SMTP's AUTH keyword list
    (["auth=oauthbearer"], "OAUTHBEARER"),
    (["AUTH=PLAIN", "AUTH=LOGIN"], None),
])
def test_the_mechanism_comes_from_the_capabilities(offered: list[str], chosen: str | None) -> None:
    assert choose_mechanism(offered) == chosen


@pytest.mark.parametrize(("challenge", "words"), [
    (b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}',
     "the server could not read the sign-in request (status 400; the server wants scope https://mail.google.com/)"),
    (base64.b64encode(b'{"status":"insufficient_scope","scope":"IMAP.AccessAsUser.All"}'),
     "the access token lacks the scope this server needs (status insufficient_scope; "
     "the server wants scope IMAP.AccessAsUser.All)"),
    (b'{"status":"418"}', "the server refused the access token (status 418)"),
    (b"[1, 2]", "the server refused the access token"),
    (b"\xff\xfe", "the server refused the access token"),
    (b"", "the server refused the access token"),
])
def test_an_error_challenge_is_read_into_words(challenge: bytes, words: str) -> None:
    assert describe_refusal(challenge) == words


def test_the_exchange_answers_an_error_challenge_with_the_dummy_response() -> None:
    bearer = SaslExchange("OAUTHBEARER", b"first")
    assert bearer(b"") == b"first"
    assert bearer(b'{"status":"invalid_token"}') == b"\x01"  # RFC 7628 §3.2.3
    assert bearer.refusal == "the access token is invalid, expired or revoked (status invalid_token)"
    xoauth2 = SaslExchange("XOAUTH2", initial_response("XOAUTH2", "u", "SECRET-TOKEN", "h", 1))
    assert xoauth2.smtp() == "user=u\x01auth=Bearer SECRET-TOKEN\x01\x01"
    assert xoauth2.smtp(b'{"status":"401"}') == ""
    assert "SECRET-TOKEN" not in repr(xoauth2)


# ---------------------------------------------------------------- accounts file


def accounts(tmp_path: Path, imap_extra: str, extra: str = "") -> Path:
    path = tmp_path / "accounts.yaml"
    path.write_text("accounts:\n  work:\n    imap:\n      host: imap.example.com\n      username: ann@example.com\n"
                    + imap_extra + extra)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(RuleFileError) as raised:
        load_accounts(path)
    return [str(problem) for problem in raised.value.problems]


def test_a_token_command_account(tmp_path: Path) -> None:
    path = accounts(tmp_path, "      oauth2: {token_command: pizauth show work}\n",
                    "    smtp: {host: smtp.example.com, username: ann@example.com, oauth2: true}\n")
    work = load_accounts(path).pick()
    assert work.imap is not None and work.smtp is not None
    assert work.imap.password is None
    assert work.imap.oauth2 == OAuth2Settings(account="work", token_command="pizauth show work")
    assert work.smtp.oauth2 == work.imap.oauth2
    assert "pizauth" not in repr(load_accounts(path))


def test_smtp_may_have_a_token_command_of_its_own(tmp_path: Path) -> None:
    path = accounts(tmp_path, "      oauth2: {provider: google, client_id: c}\n",
                    "    smtp: {host: smtp.example.com, username: ann, oauth2: {token_command: oama access ann}}\n")
    work = load_accounts(path).pick()
    assert work.smtp is not None and work.smtp.oauth2 == OAuth2Settings(account="work", token_command="oama access ann")
    assert work.imap is not None and work.imap.oauth2 is not None and work.imap.oauth2.provider == "google"


def test_a_provider_account_with_defaults(tmp_path: Path) -> None:
    path = accounts(tmp_path, "      oauth2:\n        provider: microsoft\n        client_id: 9e5f94bc\n"
                              "        tenant: contoso.onmicrosoft.com\n")
    settings = load_accounts(path).pick().imap.oauth2  # type: ignore[union-attr]
    assert settings is not None
    found = endpoints(settings)
    assert found.grant == "device"
    assert found.token_url == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    assert found.device_authorization_url == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode")
    assert "https://outlook.office.com/IMAP.AccessAsUser.All" in found.scopes and "offline_access" in found.scopes


def test_google_uses_a_loopback_redirect_and_asks_for_offline_access() -> None:
    found = endpoints(OAuth2Settings(account="g", provider="google", client_id="x", scopes=("a", "b")))
    assert (found.grant, found.authorization_url) == ("loopback", "https://accounts.google.com/o/oauth2/v2/auth")
    assert found.scopes == ("a", "b")  # scopes given replace the defaults
    assert ("access_type", "offline") in found.authorize_params


@pytest.mark.parametrize(("oauth2", "message"), [
    ("{token_command: t, client_id: c}", ":6:45: error: client_id belongs to a built-in provider sign-in"),
    ("{provider: google}", ":6:15: error: provider: google needs the client_id"),
    ("{provider: gmail, client_id: c}", "'provider' must be 'google', 'microsoft' or 'custom'"),
    ("{provider: google, client_id: c, tenant: x}", "tenant is for provider: microsoft"),
    ("{provider: google, client_id: c, token_url: 'https://t.example'}", "token_url is for provider: custom"),
    ("{provider: custom, client_id: c, authorization_url: 'https://a.example/auth'}",
     "provider: custom needs token_url"),
    ("{provider: custom, client_id: c, token_url: 'https://a.example/t'}", "needs authorization_url (loopback"),
    ("{provider: custom, client_id: c, token_url: 'http://auth.example/t', device_authorization_url: "
     "'https://a.example/d'}", "token_url must be https://"),
    ("{provider: microsoft, client_id: c, scopes: []}", "'scopes' must not be empty"),
    ("{}", "needs one of token_command, provider"),
])
def test_oauth2_settings_problems_are_placed(tmp_path: Path, oauth2: str, message: str) -> None:
    found = problems(accounts(tmp_path, f"      oauth2:\n      {oauth2}\n".replace("\n      {", " {")))
    assert any(message in problem for problem in found), found


def test_a_password_and_oauth2_together_are_refused(tmp_path: Path) -> None:
    found = problems(accounts(tmp_path, "      password_env: P\n      oauth2: {token_command: t}\n"))
    assert any("takes only one of" in p or "not both" in p for p in found), found


def test_smtp_oauth2_true_needs_imap_oauth2(tmp_path: Path) -> None:
    found = problems(accounts(tmp_path, "      password_env: P\n",
                              "    smtp: {host: smtp.example.com, username: ann, oauth2: true}\n"))
    assert any(":7:59: error: oauth2: true reuses the IMAP sign-in" in p for p in found), found


def test_loopback_custom_endpoints_may_be_plain_http(tmp_path: Path) -> None:
    path = accounts(tmp_path, "      oauth2: {provider: custom, client_id: c, token_url: 'http://127.0.0.1:8080/t', "
                              "device_authorization_url: 'http://localhost:8080/d'}\n")
    assert endpoints(load_accounts(path).pick().imap.oauth2).grant == "device"  # type: ignore[union-attr, arg-type]


# ---------------------------------------------------------------- tokens and their store


def test_a_token_command_that_prints_more_than_a_token_is_refused(tmp_path: Path) -> None:
    command = f"{sys.executable} -c \"print('Token unavailable until authorised')\""
    with pytest.raises(AuthenticationFailed, match="account 'w': oauth2 token_command printed something that is not"):
        CommandTokens(OAuth2Settings(account="w", token_command=command))()


def test_without_authlib_a_provider_account_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "authlib.integrations.requests_client", None)
    with pytest.raises(ConfigurationError, match=r"needs the 'authlib' and 'requests' packages .*mailrules\[oauth2\]"):
        session(OAuth2Settings(account="w", provider="google", client_id="c"), ())


def test_without_a_keyring_the_refresh_token_goes_to_a_private_file(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)
    store = RefreshTokenStore(tmp_path / "state")
    where = store.save("work/personal", "rt-1")
    file = tmp_path / "state" / "oauth2" / "work%2Fpersonal.json"
    assert where == f"{file}, readable only by you (no system keyring was found)"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600 and stat.S_IMODE(file.parent.stat().st_mode) == 0o700
    assert store.load("work/personal") == "rt-1" and store.load("other") is None
    file.chmod(0o644)
    store.save("work/personal", "rt-2")  # an existing file is made private again
    assert stat.S_IMODE(file.stat().st_mode) == 0o600 and store.load("work/personal") == "rt-2"


def test_a_damaged_token_file_is_a_state_store_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)
    store = RefreshTokenStore(tmp_path)
    store.save("w", "rt")
    store.file_for("w").write_text("{not json")
    with pytest.raises(StateStoreError, match="cannot read the refresh token of account 'w'"):
        store.load("w")


def test_an_access_token_is_reused_until_shortly_before_it_expires(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    from mailrules.oauth import tokens

    monkeypatch.setitem(sys.modules, "keyring", None)
    store = RefreshTokenStore(tmp_path)
    store.save("w", "rt-1")
    calls: list[str] = []

    def refresh(account: str, url: str, call: object) -> dict[str, object]:
        calls.append(url)
        return {"access_token": f"at-{len(calls)}", "expires_in": 600, "refresh_token": f"rt-{len(calls) + 1}"}

    clock = [1000.0]
    monkeypatch.setattr(tokens, "call_token_endpoint", refresh)
    monkeypatch.setattr(tokens.time, "time", lambda: clock[0])
    source = tokens.RefreshingTokens(OAuth2Settings(account="w", provider="custom", client_id="c",
                                                    token_url="https://t.example/token"), store)
    assert (source(), source()) == ("at-1", "at-1")
    clock[0] += 600 - tokens.EXPIRY_MARGIN
    assert source() == "at-2" and calls == ["https://t.example/token"] * 2
    assert store.load("w") == "rt-3"  # each rotated refresh token replaced the one before


def test_an_unreachable_token_endpoint_is_transient(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import socket

    from mailrules.errors import BackendError, PermanentError
    from mailrules.oauth.tokens import RefreshingTokens

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setitem(sys.modules, "keyring", None)
    store = RefreshTokenStore(tmp_path)
    store.save("w", "rt-1")
    source = RefreshingTokens(OAuth2Settings(account="w", provider="custom", client_id="c",
                                             token_url=f"http://127.0.0.1:{port}/token"), store)
    with pytest.raises(BackendError, match=f"account 'w': cannot reach token endpoint 127.0.0.1:{port}") as raised:
        source()
    assert not isinstance(raised.value, PermanentError) and "rt-1" not in str(raised.value)


# ---------------------------------------------------------------- mailrules auth


@pytest.mark.parametrize(("oauth2", "message"), [
    ("      password_env: P\n", "account 'work' does not sign in with oauth2; nothing to authorize"),
    ("      oauth2: {token_command: pizauth show work}\n", "gets its tokens from its token_command"),
])
def test_auth_refuses_accounts_it_cannot_sign_in(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 oauth2: str, message: str) -> None:
    code = main(["auth", "work", "--accounts", str(accounts(tmp_path, oauth2)), "--state", str(tmp_path / "s.db")])
    assert code == UsageError.exit_code
    assert message in capsys.readouterr().err


def test_the_schema_describes_every_oauth2_key() -> None:
    from mailrules.schema import load_schema

    oauth2 = load_schema("accounts")["$defs"]["oauth2"]["properties"]
    assert set(oauth2) == {"token_command", "provider", "client_id", "client_secret_command", "tenant", "scopes",
                           "authorization_url", "device_authorization_url", "token_url"}
    assert all(spec.get("description") for spec in oauth2.values())


def test_the_accounts_files_in_the_oauth2_docs_load(tmp_path: Path) -> None:
    import re
    import textwrap

    docs = (Path(__file__).resolve().parents[2] / "docs" / "oauth2.md").read_text()
    blocks = [textwrap.dedent(block) for block in re.findall(r"```yaml\n(.*?)```", docs, re.S)]
    examples = [block for block in blocks if block.startswith("accounts:")]
    assert len(examples) == 3
    for number, block in enumerate(examples):
        path = tmp_path / f"accounts{number}.yaml"
        path.write_text(block)
        account = load_accounts(path).pick()
        assert account.imap is not None and account.imap.oauth2 is not None
        assert account.smtp is not None and account.smtp.oauth2 == account.imap.oauth2
        assert len(block.strip().splitlines()) <= 6
