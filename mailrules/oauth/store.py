"""Where refresh tokens are kept: the system keyring when there is one, else a private file.

The keyring entry is service ``mailrules:oauth2``, user = the account's name.  Without a
usable keyring (none installed, or only keyring's "fail" backend, as on a headless
server), the token goes to ``<state directory>/oauth2/<account>.json``, created 0600 in a
0700 directory; ``mailrules auth`` says which of the two it used.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from mailrules.errors import StateStoreError

KEYRING_SERVICE = "mailrules:oauth2"


def _keyring():  # type: ignore[no-untyped-def]
    """The keyring module when a real backend is configured, else None."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # a broken keyring configuration is the same as none here
        return None
    return None if isinstance(backend, fail.Keyring) else keyring


@dataclass(frozen=True, slots=True)
class RefreshTokenStore:
    """Refresh tokens by account name; ``state_dir`` holds the file fallback."""

    state_dir: Path

    def file_for(self, account: str) -> Path:
        return self.state_dir / "oauth2" / (quote(account, safe="") + ".json")

    def load(self, account: str) -> str | None:
        keyring = _keyring()
        if keyring is not None:
            with contextlib.suppress(Exception):  # an unreadable keyring falls back to the file
                token = keyring.get_password(KEYRING_SERVICE, account)
                if token:
                    return str(token)
        path = self.file_for(account)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StateStoreError(f"cannot read the refresh token of account {account!r} from {path}: "
                                  f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
        token = data.get("refresh_token") if isinstance(data, dict) else None
        return token if isinstance(token, str) and token else None

    def save(self, account: str, token: str) -> str:
        """Store ``token``; returns where, in words for the user."""
        keyring = _keyring()
        if keyring is not None:
            try:
                keyring.set_password(KEYRING_SERVICE, account, token)
            except Exception as exc:  # keyring backends raise their own types; fall back to the file
                return self._save_file(account, token) + f" (the system keyring refused it: {type(exc).__name__})"
            self._remove_file(account)
            backend = type(keyring.get_keyring()).__name__
            return f"the system keyring ({backend}, service {KEYRING_SERVICE!r}, user {account!r})"
        return self._save_file(account, token) + " (no system keyring was found)"

    def _save_file(self, account: str, token: str) -> str:
        path = self.file_for(account)
        temporary = path.with_suffix(".tmp")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path.parent, 0o700)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), 0o600)  # O_CREAT's mode only applies to a new file
                json.dump({"account": account, "refresh_token": token}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except OSError as exc:
            raise StateStoreError(f"cannot store the refresh token of account {account!r} in {path}: "
                                  f"{exc.strerror or exc}") from None
        return f"{path}, readable only by you"

    def _remove_file(self, account: str) -> None:
        with contextlib.suppress(OSError):
            self.file_for(account).unlink()
