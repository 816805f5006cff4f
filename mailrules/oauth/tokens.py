"""Access tokens for an account's ``oauth2`` settings.

A ``token_command`` is asked at every login (tools such as pizauth and oama keep their own
cache and refresh).  A built-in ``provider`` uses the refresh token that ``mailrules auth``
stored: the first login of a run trades it for an access token, kept in memory until
shortly before it expires.  A refused refresh token is permanent (exit 6) and says to run
``mailrules auth ACCOUNT`` again; an unreachable token endpoint is transient (exit 3).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailrules.accounts import OAuth2Settings, run_secret_command
from mailrules.errors import AuthenticationFailed, BackendError, ConfigurationError
from mailrules.oauth.store import RefreshTokenStore

HTTP_TIMEOUT = 30.0
EXPIRY_MARGIN = 120.0  # seconds: a token this close to expiring may lapse between check and LOGIN
TokenSource = Callable[[], str]

GOOGLE_SCOPES = ("https://mail.google.com/",)
MICROSOFT_SCOPES = ("https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/SMTP.Send",
                    "offline_access")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """A provider's OAuth2 endpoints and default scopes; ``grant`` is how ``mailrules auth`` signs in."""

    token_url: str
    grant: str  # "loopback" | "device"
    authorization_url: str | None = None
    device_authorization_url: str | None = None
    scopes: tuple[str, ...] = ()
    # Google hands out a refresh token only with access_type=offline, and again only with consent.
    authorize_params: tuple[tuple[str, str], ...] = ()


def endpoints(settings: OAuth2Settings) -> Endpoints:
    """The endpoints for ``settings.provider``; scopes in the settings replace the defaults."""
    if settings.provider == "google":
        found = Endpoints("https://oauth2.googleapis.com/token", "loopback",
                          authorization_url="https://accounts.google.com/o/oauth2/v2/auth", scopes=GOOGLE_SCOPES,
                          authorize_params=(("access_type", "offline"), ("prompt", "consent")))
    elif settings.provider == "microsoft":
        base = f"https://login.microsoftonline.com/{settings.tenant}/oauth2/v2.0"
        found = Endpoints(f"{base}/token", "device", device_authorization_url=f"{base}/devicecode",
                          scopes=MICROSOFT_SCOPES)
    elif settings.provider == "custom" and settings.token_url:
        found = Endpoints(settings.token_url, "loopback" if settings.authorization_url else "device",
                          authorization_url=settings.authorization_url,
                          device_authorization_url=settings.device_authorization_url)
    else:
        raise ConfigurationError(f"{settings.loc}: account {settings.account!r} has no OAuth2 provider to sign in with")
    if settings.scopes:
        found = Endpoints(found.token_url, found.grant, found.authorization_url, found.device_authorization_url,
                          settings.scopes, found.authorize_params)
    return found


def token_source(settings: OAuth2Settings, state_dir: Path) -> TokenSource:
    """A callable giving a usable access token, refreshed when the one it holds is near expiry.

    Each connection of a run gets its own (IMAP and SMTP refresh once each); the refresh
    token is read from the store at that moment, so one rotated by the other is seen.
    """
    if settings.token_command:
        return CommandTokens(settings)
    return RefreshingTokens(settings, RefreshTokenStore(state_dir))


@dataclass(frozen=True, slots=True)
class CommandTokens:
    settings: OAuth2Settings

    def __call__(self) -> str:
        command = self.settings.token_command or ""
        token = run_secret_command(command, "oauth2 token_command", f"account {self.settings.account!r}",
                                   error=AuthenticationFailed, noun="access token").strip()
        if not token or any(char.isspace() or not char.isprintable() for char in token):
            raise AuthenticationFailed(f"account {self.settings.account!r}: oauth2 token_command printed "
                                       "something that is not an access token (one word on the first line)")
        return token


def again(account: str) -> str:
    return f"run `mailrules auth {account}` again"


def client_secret(settings: OAuth2Settings) -> str | None:
    if not settings.client_secret_command:
        return None
    return run_secret_command(settings.client_secret_command, "oauth2 client_secret_command",
                              f"account {settings.account!r}", error=AuthenticationFailed, noun="client secret")


def session(settings: OAuth2Settings, scopes: tuple[str, ...], **options: Any):  # type: ignore[no-untyped-def]
    """An authlib OAuth2 client session for ``settings`` (authlib and requests are imported here)."""
    try:
        from authlib.integrations.requests_client import OAuth2Session
    except ImportError:
        raise ConfigurationError(
            f"account {settings.account!r}: oauth2 provider sign-in needs the 'authlib' and 'requests' packages "
            "(pip install 'mailrules[oauth2]'), or use oauth2: {token_command: ...}"
        ) from None
    secret = client_secret(settings)
    return OAuth2Session(client_id=settings.client_id, client_secret=secret, scope=" ".join(scopes),
                         token_endpoint_auth_method="client_secret_post" if secret else "none",
                         default_timeout=HTTP_TIMEOUT, **options)


@dataclass
class RefreshingTokens:
    settings: OAuth2Settings
    store: RefreshTokenStore
    _access: str | None = field(default=None, repr=False)
    _expires_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self) -> str:
        with self._lock:
            if self._access is None or time.time() >= self._expires_at - EXPIRY_MARGIN:
                self._refresh()
            assert self._access is not None
            return self._access

    def _refresh(self) -> None:
        account = self.settings.account
        refresh_token = self.store.load(account)
        if refresh_token is None:
            raise AuthenticationFailed(f"account {account!r} is not signed in to "
                                       f"{self.settings.provider}: run `mailrules auth {account}` first")
        found = endpoints(self.settings)
        client = session(self.settings, found.scopes)
        token = call_token_endpoint(account, found.token_url,
                                    lambda: client.refresh_token(found.token_url, refresh_token=refresh_token))
        access = token.get("access_token")
        if not isinstance(access, str) or not access:
            raise AuthenticationFailed(f"account {account!r}: the token endpoint answered without an access "
                                       f"token; {again(account)}")
        rotated = token.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != refresh_token:
            self.store.save(account, rotated)  # providers that rotate revoke the old one
        self._access = access
        self._expires_at = time.time() + _seconds(token.get("expires_in"), default=3600.0)


def _seconds(value: object, default: float) -> float:
    try:
        return max(0.0, float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


# OAuth2 error codes (RFC 6749 §5.2) that mean the stored authorization is gone for good.
_SIGN_IN_AGAIN = {"invalid_grant", "interaction_required", "consent_required", "login_required"}
_CLIENT_PROBLEM = {"invalid_client", "unauthorized_client", "invalid_scope", "unsupported_grant_type"}


def call_token_endpoint(account: str, url: str, call: Callable[[], Any]) -> dict[str, Any]:
    """Run one token-endpoint request, turning what authlib and requests raise into our errors."""
    import requests
    from authlib.common.errors import AuthlibBaseError

    host = url.split("/")[2] if "//" in url else url
    try:
        return dict(call())
    except AuthlibBaseError as exc:
        code = str(exc.error or "error")
        said = _said(exc.description)
        if code in _SIGN_IN_AGAIN:
            raise AuthenticationFailed(f"account {account!r}: {host} refused the stored refresh token ({code}{said}); "
                                       f"it was revoked or has expired: {again(account)}") from None
        if code in _CLIENT_PROBLEM:
            raise AuthenticationFailed(f"account {account!r}: {host} refused the OAuth2 client ({code}{said}); "
                                       "check client_id, client_secret_command and scopes") from None
        raise BackendError(f"account {account!r}: token endpoint {host} failed ({code}{said})") from None
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise BackendError(f"account {account!r}: token endpoint {host} answered HTTP {status}") from None
    except requests.RequestException as exc:
        raise BackendError(f"account {account!r}: cannot reach token endpoint {host}: {type(exc).__name__}") from None
    except ValueError:
        raise BackendError(f"account {account!r}: token endpoint {host} did not answer with JSON") from None


def _said(description: object) -> str:
    text = " ".join(str(description or "").split())[:200]
    return f": {text}" if text else ""
