"""The accounts file: which mailbox each account is and how to log in to it.

Rule files are shared in a team's repository; accounts are personal, so they live in a
separate file (by default ``~/.config/mailrules/accounts.yaml``).  Passwords are never
stored in it, only where to get them (an environment variable, a command such as
``pass``, or the system keyring), and they are fetched only when a connection needs
them.  No dataclass here holds a password, and no message ever shows one.  An ``oauth2``
block signs in with access tokens instead (``mailrules.oauth`` fetches them).
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from mailrules.errors import ConfigurationError, Loc, MailrulesError, Problem, RuleFileError, UsageError
from mailrules.model import NOWHERE

if TYPE_CHECKING:  # the loader (YAML, jsonschema) is imported only when a file is read
    from mailrules.yamlsrc import LocIndex, Path

TlsMode = Literal["ssl", "starttls", "none"]
DEFAULT_DELETE_THRESHOLD = 100
PASSWORD_COMMAND_TIMEOUT = 30.0
KEYRING_SERVICE_PREFIX = "mailrules:"
# The one table of default ports by TLS mode, for the accounts file and the backends alike.
IMAP_PORTS = {"ssl": 993, "starttls": 143, "none": 143}
SMTP_PORTS = {"ssl": 465, "starttls": 587, "none": 25}
_SECRET_KEYS = {"password_env": "env", "password_command": "command", "password_keyring": "keyring"}
OAuth2Provider = Literal["google", "microsoft", "custom"]
_PROVIDER_KEYS = ("client_id", "client_secret_command", "tenant", "scopes",
                  "authorization_url", "device_authorization_url", "token_url")
_CUSTOM_ENDPOINTS = ("authorization_url", "device_authorization_url", "token_url")


@dataclass(frozen=True, slots=True)
class Preset:
    """What a provider's own documentation says about its servers: an account naming the
    provider gets these for every key its imap and smtp blocks leave out."""

    name: str
    imap_host: str
    smtp_host: str
    smtp_tls: TlsMode
    oauth2_provider: OAuth2Provider | None  # None: the provider signs in with app passwords only
    sign_in: str  # how to sign in there, for the error when an account gives no way


PRESETS = {
    "gmail": Preset("gmail", "imap.gmail.com", "smtp.gmail.com", "ssl", "google",
                    "oauth2 with your client_id, or an app password (password_command)"),
    "outlook": Preset("outlook", "outlook.office365.com", "smtp.office365.com", "starttls", "microsoft",
                      "oauth2 with your client_id (Microsoft 365 takes no passwords over IMAP)"),
    "fastmail": Preset("fastmail", "imap.fastmail.com", "smtp.fastmail.com", "ssl", None,
                       "an app password (password_command, password_env or password_keyring)"),
    "icloud": Preset("icloud", "imap.mail.me.com", "smtp.mail.me.com", "starttls", None,
                     "an app-specific password (password_command, password_env or password_keyring)"),
}


@dataclass(frozen=True, slots=True)
class SecretSource:
    """Where a password comes from; ``reference`` is the variable name or command line."""

    kind: Literal["env", "command", "keyring"]
    reference: str = field(default="", repr=False)
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class OAuth2Settings:
    """Where an account's OAuth2 access tokens come from: ``token_command``, or a
    ``provider`` whose refresh token ``mailrules auth ACCOUNT`` obtained once.

    ``account`` names the account: its refresh token is stored under that name.
    """

    account: str
    token_command: str | None = field(default=None, repr=False)
    provider: OAuth2Provider | None = None
    client_id: str | None = None
    client_secret_command: str | None = field(default=None, repr=False)
    tenant: str = "common"
    scopes: tuple[str, ...] = ()
    authorization_url: str | None = None
    device_authorization_url: str | None = None
    token_url: str | None = None
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class ImapSettings:
    host: str
    username: str
    password: SecretSource | None = field(repr=False)  # None when ``oauth2`` signs in
    port: int = 993
    tls: TlsMode = "ssl"
    ca_file: str | None = None
    allow_insecure: bool = False
    oauth2: OAuth2Settings | None = None
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int = 465
    tls: TlsMode = "ssl"
    username: str | None = None
    password: SecretSource | None = field(default=None, repr=False)
    ca_file: str | None = None
    allow_insecure: bool = False
    oauth2: OAuth2Settings | None = None
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    imap: ImapSettings | None = None
    maildir: str | None = None  # absolute, resolved against the accounts file
    addresses: tuple[str, ...] = ()
    smtp: SmtpSettings | None = None
    delete_threshold: int = DEFAULT_DELETE_THRESHOLD
    loc: Loc = field(default=NOWHERE, compare=False)
    subaddress_separator: str = "+"  # each character splits user and detail (RFC 5233)


@dataclass(frozen=True, slots=True)
class Accounts:
    path: str
    accounts: tuple[Account, ...]
    default: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(account.name for account in self.accounts)

    def pick(self, name: str | None = None) -> Account:
        """The account called ``name``, else the file's default, else the only one."""
        chosen = name if name is not None else self.default
        if chosen is None and len(self.accounts) == 1:
            return self.accounts[0]
        if chosen is None:
            raise UsageError(
                f"{self.path} defines several accounts ({', '.join(self.names)}); "
                "choose one with --account or set 'default:' in the file"
            )
        for account in self.accounts:
            if account.name == chosen:
                return account
        raise ConfigurationError(f"unknown account {chosen!r}; {self.path} defines {', '.join(self.names)}")


def default_accounts_path() -> str:
    """``$XDG_CONFIG_HOME/mailrules/accounts.yaml``, by default under ``~/.config``."""
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config, "mailrules", "accounts.yaml")


def load_accounts(path: str | os.PathLike[str] | None = None) -> Accounts:
    """Read and check an accounts file; ``RuleFileError`` lists every problem, ``UsageError`` a missing file."""
    file = os.fspath(path) if path is not None else default_accounts_path()
    if not os.path.exists(file):
        raise UsageError(f"accounts file not found: {file}")
    from mailrules.loader import load_yaml_document
    from mailrules.schema import SchemaHints

    doc = load_yaml_document(file, "accounts", SchemaHints(unknown_key=_password_key_hint))
    reader = _Reader(doc.locs, os.path.dirname(os.path.abspath(file)))
    accounts = tuple(reader.account(name, data) for name, data in doc.data["accounts"].items())
    default = doc.data.get("default")
    if default is not None and default not in {account.name for account in accounts}:
        reader.error(("default",), f"default account {default!r} is not defined under 'accounts'")
    if reader.problems:
        raise RuleFileError(reader.problems)
    return Accounts(file, accounts, default)


def _password_key_hint(path: Path, key: str) -> str | None:
    if key == "password":
        return (
            "passwords are not written in the accounts file; "
            "use password_env, password_command or password_keyring: true "
            "(or oauth2, for Gmail and Microsoft 365: see docs/oauth2.md)"
        )
    return None




@dataclass(frozen=True, slots=True)
class _Reader:
    """Schema-valid account data -> dataclasses, collecting the checks a schema can't express."""

    locs: LocIndex
    base_dir: str
    problems: list[Problem] = field(default_factory=list)

    def error(self, path: Path, message: str) -> None:
        self.problems.append(Problem(self.locs.at(path), message))

    def account(self, name: str, data: dict[str, Any]) -> Account:
        path: Path = ("accounts", name)
        addresses = tuple(data.get("addresses", ()))
        for index, address in enumerate(addresses):
            if "@" not in address or any(c.isspace() for c in address):
                self.error(path + ("addresses", index), f"{address!r} is not an e-mail address")
        preset = PRESETS.get(data.get("provider", ""))
        if preset is not None and "maildir" in data:
            self.error(path + ("provider",), "a provider preset describes IMAP and SMTP servers, not a Maildir")
        imap = self.imap(data["imap"], path + ("imap",), name, preset) if "imap" in data else None
        return Account(
            name=name,
            imap=imap,
            maildir=self.local_path(data["maildir"], path + ("maildir",)) if "maildir" in data else None,
            addresses=addresses,
            smtp=self.account_smtp(data, path, imap, name, preset),
            delete_threshold=data.get("delete_threshold", DEFAULT_DELETE_THRESHOLD),
            loc=self.locs.key(path),
            subaddress_separator=data.get("subaddress_separator", "+"),
        )

    def imap(self, data: dict[str, Any], path: Path, account: str, preset: Preset | None = None) -> ImapSettings:
        tls = data.get("tls", "ssl")
        host = self.host(data, path, preset.imap_host if preset else None)
        self.check_tls(data, path)
        oauth2 = (self.oauth2(data["oauth2"], path + ("oauth2",), account, preset)
                  if "oauth2" in data else None)
        secret = self.secret(data, path)
        if oauth2 is not None and secret is not None:
            self.error(path + ("oauth2",), "give either a password source or oauth2, not both")
        return ImapSettings(
            host=host,
            username=data["username"],
            password=None if oauth2 is not None else secret or SecretSource("env"),
            oauth2=oauth2,
            port=data.get("port", IMAP_PORTS[tls]),
            tls=tls,
            ca_file=self.local_path(data["ca_file"], path + ("ca_file",)) if "ca_file" in data else None,
            allow_insecure=data.get("allow_insecure", False),
            loc=self.locs.at(path),
        )

    def account_smtp(self, data: dict[str, Any], path: Path, imap: ImapSettings | None, account: str,
                     preset: Preset | None) -> SmtpSettings | None:
        if "smtp" in data:
            return self.smtp(data["smtp"], path + ("smtp",), imap, account, preset)
        if preset is None or imap is None:
            return None
        # The provider's submission server takes the same sign-in as its IMAP server.
        return SmtpSettings(host=preset.smtp_host, port=SMTP_PORTS[preset.smtp_tls], tls=preset.smtp_tls,
                            username=imap.username, password=imap.password, oauth2=imap.oauth2, loc=imap.loc)

    def smtp(self, data: dict[str, Any], path: Path, imap: ImapSettings | None, account: str,
             preset: Preset | None = None) -> SmtpSettings:
        tls = data.get("tls", preset.smtp_tls if preset else "ssl")
        host = self.host(data, path, preset.smtp_host if preset else None)
        self.check_tls(data, path)
        secret = self.secret(data, path)
        oauth2 = self.smtp_oauth2(data, path, imap, account, preset)
        if oauth2 is not None and secret is not None:
            self.error(path + ("oauth2",), "give either a password source or oauth2, not both")
        if "username" in data and secret is None and "oauth2" not in data:
            self.error(path, "SMTP with a username needs one of password_env, password_command, "
                             "password_keyring or oauth2")
        if "username" not in data and secret is not None:
            self.error(path, "an SMTP password source needs a username")
        if "username" not in data and "oauth2" in data:
            self.error(path, "SMTP oauth2 needs a username (the account's address at most providers)")
        return SmtpSettings(
            host=host,
            port=data.get("port", SMTP_PORTS[tls]),
            tls=tls,
            username=data.get("username"),
            password=secret,
            ca_file=self.local_path(data["ca_file"], path + ("ca_file",)) if "ca_file" in data else None,
            allow_insecure=data.get("allow_insecure", False),
            oauth2=oauth2,
            loc=self.locs.at(path),
        )

    def smtp_oauth2(self, data: dict[str, Any], path: Path, imap: ImapSettings | None,
                    account: str, preset: Preset | None = None) -> OAuth2Settings | None:
        if "oauth2" not in data:
            return None
        if data["oauth2"] is True:
            if imap is None or imap.oauth2 is None:
                self.error(path + ("oauth2",), "oauth2: true reuses the IMAP sign-in, but the account's imap "
                                               "settings have no oauth2")
                return None
            return imap.oauth2
        return self.oauth2(data["oauth2"], path + ("oauth2",), account, preset)

    def oauth2(self, data: dict[str, Any], path: Path, account: str, preset: Preset | None = None) -> OAuth2Settings:
        """The schema guarantees token_command, provider or client_id; the rest depends on which."""
        provider = data.get("provider")
        if provider is None and "token_command" not in data:
            provider = preset.oauth2_provider if preset else None
            if provider is None:
                self.error(path, "oauth2 with a client_id needs provider: google, microsoft or custom"
                           + (f"; provider: {preset.name} has no built-in OAuth2 sign-in: use {preset.sign_in}"
                              if preset else ""))
        if "token_command" in data:
            for key in (k for k in (*_PROVIDER_KEYS, "provider") if k in data):
                self.error(path + (key,), f"{key} belongs to a built-in provider sign-in; "
                                          "token_command gets its tokens elsewhere")
        elif provider in ("google", "microsoft"):
            if "client_id" not in data:
                self.error(path, f"provider: {provider} needs the client_id of an application registered "
                                 "with it (see docs/oauth2.md)")
            for key in (k for k in _CUSTOM_ENDPOINTS if k in data):
                self.error(path + (key,), f"{key} is for provider: custom; {provider}'s endpoints are built in")
        elif provider == "custom":
            self.check_custom(data, path)
        if "tenant" in data and provider != "microsoft":
            self.error(path + ("tenant",), "tenant is for provider: microsoft")
        return OAuth2Settings(
            account=account,
            token_command=data.get("token_command"),
            provider=provider,
            client_id=data.get("client_id"),
            client_secret_command=data.get("client_secret_command"),
            tenant=data.get("tenant", "common"),
            scopes=tuple(data.get("scopes", ())),
            authorization_url=data.get("authorization_url"),
            device_authorization_url=data.get("device_authorization_url"),
            token_url=data.get("token_url"),
            loc=self.locs.key(path),
        )

    def check_custom(self, data: dict[str, Any], path: Path) -> None:
        for key in ("client_id", "token_url"):
            if key not in data:
                self.error(path, f"provider: custom needs {key}")
        if "authorization_url" not in data and "device_authorization_url" not in data:
            self.error(path, "provider: custom needs authorization_url (loopback sign-in) "
                             "or device_authorization_url (device code)")
        for key in (k for k in _CUSTOM_ENDPOINTS if k in data):
            host = urlsplit(data[key]).hostname or ""
            if data[key].lower().startswith("http:") and not is_loopback(host):
                self.error(path + (key,), f"{key} must be https:// (client secrets and tokens cross it); "
                                          "plain http is allowed only to loopback")

    def secret(self, data: dict[str, Any], path: Path) -> SecretSource | None:
        given = [key for key in _SECRET_KEYS if key in data]
        if len(given) > 1:
            self.error(path + (given[1],), f"give only one of {', '.join(_SECRET_KEYS)}")
        if not given:
            return None
        key = given[0]
        reference = "" if key == "password_keyring" else str(data[key])
        return SecretSource(_SECRET_KEYS[key], reference, self.locs.key(path + (key,)))  # type: ignore[arg-type]

    def host(self, data: dict[str, Any], path: Path, preset_host: str | None) -> str:
        host = data.get("host", preset_host)
        if host is None:
            self.error(path, "host is missing (or name a provider preset: provider: gmail, outlook, "
                             "fastmail or icloud)")
            return ""
        return str(host)

    def check_tls(self, data: dict[str, Any], path: Path) -> None:
        if data.get("tls") == "none" and not data.get("allow_insecure") and not is_loopback(data.get("host", "")):
            self.error(
                path + ("tls",),
                f"tls: none would send the password unencrypted to {data.get('host', 'the server')}; "
                "use ssl or starttls, or set allow_insecure: true to accept that",
            )

    def local_path(self, value: str, path: Path) -> str:
        if "\0" in value:
            self.error(path, "a path cannot contain a NUL character")
        return os.path.normpath(os.path.join(self.base_dir, os.path.expanduser(value)))


def is_loopback(host: str) -> bool:
    """True for names and addresses that never leave the machine.

    >>> is_loopback("127.0.0.2"), is_loopback("[::1]"), is_loopback("localhost"), is_loopback("mail.example.com")
    (True, True, True, False)
    """
    name = host.strip().rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761 §6.3
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------- passwords


def resolve_password(settings: ImapSettings | SmtpSettings, *, timeout: float = PASSWORD_COMMAND_TIMEOUT) -> str:
    """Fetch the password for ``settings`` from its source; ``UsageError`` says why it couldn't."""
    source = settings.password
    if source is None:
        raise UsageError(f"{settings.loc}: no password source configured for {settings.host}")
    if source.kind == "env":
        return _env_password(source)
    if source.kind == "command":
        return _command_password(source, timeout)
    return _keyring_password(source, settings.host, settings.username or "")


def _env_password(source: SecretSource) -> str:
    value = os.environ.get(source.reference)
    if not value:
        raise UsageError(f"{source.loc}: environment variable {source.reference} (password_env) is not set or empty")
    return value


def _command_password(source: SecretSource, timeout: float) -> str:
    return run_secret_command(source.reference, "password_command", str(source.loc), timeout=timeout, noun="password")


def run_secret_command(command: str, what: str, where: str, *, timeout: float = PASSWORD_COMMAND_TIMEOUT,
                       error: type[MailrulesError] = UsageError, noun: str = "secret") -> str:
    """The first line ``command`` prints, run without a shell; ``error`` says why there is none.

    ``what`` names the setting (``password_command``, ``token_command``) and ``where`` the
    place or account in the messages, which never contain the command's output.
    """
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise error(f"{where}: cannot split {what} into words: {exc}") from None
    if not argv:
        raise error(f"{where}: {what} is empty")
    try:
        completed = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise error(f"{where}: {what} {argv[0]!r} did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise error(f"{where}: cannot run {what} {argv[0]!r}: {exc.strerror or exc}") from None
    if completed.returncode != 0:
        detail = _first_line(completed.stderr)
        raise error(
            f"{where}: {what} {argv[0]!r} failed with exit status {completed.returncode}"
            + (f": {detail}" if detail else "")
        )
    # Like isync's PassCmd, the first line is the secret: `pass` prints metadata below it.
    secret = _first_line(completed.stdout, limit=None)
    if not secret:
        raise error(f"{where}: {what} {argv[0]!r} printed no {noun}")
    return secret


def _first_line(output: bytes, limit: int | None = 200) -> str:
    lines = output.decode("utf-8", errors="replace").splitlines()
    line = lines[0] if lines else ""
    return line if limit is None else line.strip()[:limit]


def _keyring_password(source: SecretSource, host: str, username: str) -> str:
    try:
        import keyring  # optional dependency: only who asks for the keyring needs it
    except ImportError:
        raise UsageError(
            f"{source.loc}: password_keyring needs the 'keyring' package (pip install 'mailrules[keyring]')"
        ) from None
    service = KEYRING_SERVICE_PREFIX + host
    try:
        password = keyring.get_password(service, username)
    except Exception as exc:  # keyring backends raise their own error types; none must escape as a traceback
        raise UsageError(f"{source.loc}: keyring lookup for {service} failed: {type(exc).__name__}: {exc}") from None
    if not password:
        raise UsageError(
            f"{source.loc}: the keyring has no password for service {service!r}, user {username!r} "
            f"(store one with: keyring set {service} {username})"
        )
    return password
