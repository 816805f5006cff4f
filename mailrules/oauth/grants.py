"""``mailrules auth ACCOUNT``: the one-time authorization that yields a refresh token.

Two grants, both through authlib: the device code grant (RFC 8628; Microsoft's choice for
programs without a browser of their own: the user opens a page anywhere and types a code)
and the authorization code grant with a loopback redirect and PKCE (RFC 8252 §7.3, RFC
7636; what Google asks of installed applications): mailrules listens on 127.0.0.1 on a
free port for the one redirect that brings the code back.
"""

from __future__ import annotations

import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.parse import parse_qs, urlsplit

from mailrules.accounts import Account, OAuth2Settings
from mailrules.errors import AuthenticationFailed, UsageError
from mailrules.oauth.store import RefreshTokenStore
from mailrules.oauth.tokens import Endpoints, call_token_endpoint, endpoints, session

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SIGN_IN_TIMEOUT = 600.0  # seconds the user has to finish in the browser
Browser = Callable[[str], object]


def open_browser(url: str) -> object:
    """Try the desktop's browser; on a server there is none and the printed address is enough."""
    try:
        return webbrowser.open(url)
    except Exception:  # noqa: BLE001 - no browser is fine
        return False


def oauth2_settings_of(account: Account) -> OAuth2Settings:
    settings = account.imap.oauth2 if account.imap is not None else None
    if settings is None and account.smtp is not None:
        settings = account.smtp.oauth2
    if settings is None:
        raise UsageError(f"account {account.name!r} does not sign in with oauth2; nothing to authorize")
    if settings.token_command:
        raise UsageError(f"account {account.name!r} gets its tokens from its token_command; "
                         "authorize in that tool instead (e.g. `pizauth` or `oama`)")
    return settings


@dataclass(frozen=True, slots=True)
class Authorization:
    account: str
    stored_in: str
    grant: str


def authorize(account: Account, state_dir: Path, out: TextIO, *, browser: Browser | None = None,
              timeout: float = SIGN_IN_TIMEOUT) -> Authorization:
    """Run the provider's grant, store the refresh token, and say where."""
    browser = browser or open_browser
    settings = oauth2_settings_of(account)
    found = endpoints(settings)
    username = account.imap.username if account.imap is not None else ""
    if found.grant == "device":
        token = _device_grant(settings, found, out, timeout)
    else:
        token = _loopback_grant(settings, found, username, out, browser, timeout)
    refresh = token.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        raise AuthenticationFailed(f"account {account.name!r}: the provider signed you in but sent no refresh "
                                   "token, so later runs could not sign in by themselves (for a custom provider, "
                                   "ask for its offline scope, e.g. offline_access)")
    stored_in = RefreshTokenStore(state_dir).save(account.name, refresh)
    return Authorization(account.name, stored_in, found.grant)


class Connectable(Protocol):
    """An IMAP mailbox that is not yet signed in."""

    def connect(self) -> object: ...

    def close(self) -> None: ...


def check_imap_sign_in(mailbox: Connectable, account: Account, out: TextIO) -> None:
    """Log in once now, so a missing permission or a disabled IMAP shows here, not at the first run."""
    assert account.imap is not None
    try:
        mailbox.connect()
    finally:
        mailbox.close()
    print(f"checked: the IMAP server {account.imap.host}:{account.imap.port} accepts the sign-in of "
          f"{account.imap.username}", file=out)


# ---------------------------------------------------------------- device code


def _device_grant(settings: OAuth2Settings, found: Endpoints, out: TextIO, timeout: float) -> dict[str, Any]:
    assert found.device_authorization_url is not None
    client = session(settings, found.scopes)
    account = settings.account
    answer = call_token_endpoint(account, found.device_authorization_url, lambda: _device_request(client, found))
    device_code, user_code = answer.get("device_code"), answer.get("user_code")
    verify = answer.get("verification_uri_complete") or answer.get("verification_uri") or answer.get("verification_url")
    if not (isinstance(device_code, str) and isinstance(user_code, str) and isinstance(verify, str)):
        raise AuthenticationFailed(f"account {account!r}: the device authorization endpoint answered without "
                                   "device_code, user_code and verification_uri")
    print(f"To sign in account {account!r}, open {verify} in any browser and enter the code {user_code}",
          file=out, flush=True)
    interval = max(1.0, _number(answer.get("interval"), 5.0))
    deadline = time.monotonic() + min(timeout, _number(answer.get("expires_in"), timeout))
    while time.monotonic() < deadline:
        time.sleep(interval)
        try:
            return call_token_endpoint(account, found.token_url, lambda: _polled(account, lambda: client.fetch_token(
                found.token_url, grant_type=DEVICE_CODE_GRANT, device_code=device_code)))
        except _Pending as pending:
            interval += pending.slower
    raise AuthenticationFailed(f"account {account!r}: the sign-in was not completed in time; run `mailrules auth "
                               f"{account}` again")


class _Pending(Exception):
    def __init__(self, slower: float):
        self.slower = slower


def _device_request(client: Any, found: Endpoints) -> dict[str, Any]:
    from authlib.common.errors import AuthlibBaseError

    response = client.post(found.device_authorization_url, withhold_token=True,
                           data={"client_id": client.client_id, "scope": " ".join(found.scopes)})
    if response.status_code >= 500:
        response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    if "error" in body:
        raise AuthlibBaseError(error=body.get("error"), description=body.get("error_description"))
    return body


def _number(value: object, default: float) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def _polled(account: str, call: Callable[[], Any]) -> Any:
    """One poll of the token endpoint; RFC 8628 §3.5's "keep waiting" answers are not failures."""
    from authlib.common.errors import AuthlibBaseError

    try:
        return call()
    except AuthlibBaseError as exc:
        if exc.error == "authorization_pending":
            raise _Pending(0.0) from None
        if exc.error == "slow_down":
            raise _Pending(5.0) from None
        if exc.error in ("access_denied", "expired_token"):
            outcome = "declined" if exc.error == "access_denied" else "not completed in time"
            raise AuthenticationFailed(f"account {account!r}: the sign-in was {outcome}; "
                                       f"run `mailrules auth {account}` again") from None
        raise


# ---------------------------------------------------------------- loopback redirect with PKCE


def _loopback_grant(settings: OAuth2Settings, found: Endpoints, username: str, out: TextIO, browser: Browser,
                    timeout: float) -> dict[str, Any]:
    from authlib.common.security import generate_token

    assert found.authorization_url is not None
    receiver = _RedirectReceiver.start()
    try:
        client = session(settings, found.scopes, redirect_uri=receiver.redirect_uri, code_challenge_method="S256")
        verifier = generate_token(64)
        params = dict(found.authorize_params)
        if username and "@" in username:
            params["login_hint"] = username
        url, state = client.create_authorization_url(found.authorization_url, code_verifier=verifier, **params)
        print(f"To sign in account {settings.account!r}, open this address in a browser on this machine "
              f"(mailrules waits at {receiver.redirect_uri} for the answer):\n{url}", file=out, flush=True)
        browser(url)
        callback = receiver.wait(timeout)
    finally:
        receiver.close()
    query = parse_qs(urlsplit(callback).query)
    if "error" in query:
        raise AuthenticationFailed(f"account {settings.account!r}: the provider did not sign you in "
                                   f"({query['error'][0][:80]}); run `mailrules auth {settings.account}` again")
    if query.get("state", [""])[0] != state:
        raise AuthenticationFailed(f"account {settings.account!r}: the sign-in answer did not belong to this "
                                   "request (state mismatch); run `mailrules auth` again")
    return call_token_endpoint(settings.account, found.token_url, lambda: client.fetch_token(
        found.token_url, authorization_response=callback, code_verifier=verifier, state=state))


class _RedirectReceiver:
    """A one-shot HTTP server on 127.0.0.1 that keeps the first request carrying code or error."""

    def __init__(self, server: HTTPServer):
        self.server = server
        self.callback: str | None = None

    @classmethod
    def start(cls) -> _RedirectReceiver:
        receiver: _RedirectReceiver

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                query = parse_qs(urlsplit(self.path).query)
                done = "code" in query or "error" in query
                if done and receiver.callback is None:
                    receiver.callback = receiver.redirect_uri.rstrip("/") + self.path
                body = (b"mailrules: signed in; you can close this page." if done
                        else b"mailrules is waiting for the sign-in answer.")
                self.send_response(200 if done else 404)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # the query holds the code: never log it
                pass

        receiver = cls(HTTPServer(("127.0.0.1", 0), Handler))
        return receiver

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def wait(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while self.callback is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AuthenticationFailed("the sign-in in the browser was not completed in time; "
                                           "run `mailrules auth` again")
            self.server.timeout = min(left, 1.0)
            self.server.handle_request()
        return self.callback

    def close(self) -> None:
        self.server.server_close()
