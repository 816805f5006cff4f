"""The accounts file: mailboxes, servers and where passwords come from (never the passwords)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from mailrules.accounts import (
    ImapSettings,
    SecretSource,
    SmtpSettings,
    default_accounts_path,
    load_accounts,
    resolve_password,
)
from mailrules.errors import ConfigurationError, Loc, RuleFileError, UsageError

FULL = """\
accounts:
  personal:
    imap:
      host: imap.example.com
      username: alice
      password_env: MAILRULES_TEST_PW
      ca_file: certs/ca.pem
    addresses: [alice@example.com, alice@example.org]
    smtp: {host: smtp.example.com, tls: starttls, username: alice, password_command: "pass show mail"}
    delete_threshold: 20
  local:
    maildir: mail/local
  lab:
    imap: {host: 127.0.0.1, port: 1143, tls: none, username: test, password_keyring: true}
default: personal
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accounts.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(RuleFileError) as raised:
        load_accounts(write(tmp_path, text))
    return [str(problem) for problem in raised.value.problems]


def test_a_full_accounts_file(tmp_path: Path) -> None:
    accounts = load_accounts(write(tmp_path, FULL))
    personal, local, lab = accounts.accounts
    assert accounts.names == ("personal", "local", "lab") and accounts.default == "personal"
    assert personal.imap == ImapSettings(
        host="imap.example.com", username="alice", password=SecretSource("env", "MAILRULES_TEST_PW"),
        port=993, tls="ssl", ca_file=str(tmp_path / "certs" / "ca.pem"),
    )  # fmt: skip
    assert personal.smtp == SmtpSettings(
        host="smtp.example.com", port=587, tls="starttls", username="alice", password=SecretSource("command", "pass show mail")
    )
    assert (personal.addresses, personal.delete_threshold, personal.maildir) == (("alice@example.com", "alice@example.org"), 20, None)
    assert (local.maildir, local.imap, local.delete_threshold) == (str(tmp_path / "mail" / "local"), None, 100)
    assert (lab.imap.port, lab.imap.tls, lab.imap.password.kind) == (1143, "none", "keyring")


@pytest.mark.parametrize(("tls", "port"), [("ssl", 993), ("starttls", 143)])
def test_imap_ports_follow_the_tls_mode(tmp_path: Path, tls: str, port: int) -> None:
    text = f"accounts:\n  a:\n    imap: {{host: h.example, tls: {tls}, username: u, password_env: P}}\n"
    assert load_accounts(write(tmp_path, text)).pick().imap.port == port


@pytest.mark.parametrize(("tls", "port"), [("ssl", 465), ("starttls", 587), ("none", 25)])
def test_smtp_ports_follow_the_tls_mode(tmp_path: Path, tls: str, port: int) -> None:
    text = f"accounts:\n  a:\n    maildir: m\n    smtp: {{host: localhost, tls: {tls}}}\n"
    assert load_accounts(write(tmp_path, text)).pick().smtp.port == port


def test_pick_by_name_by_default_or_the_only_one(tmp_path: Path) -> None:
    accounts = load_accounts(write(tmp_path, FULL))
    assert accounts.pick("local").name == "local"
    assert accounts.pick(None).name == "personal"
    single = load_accounts(write(tmp_path, "accounts:\n  only:\n    maildir: m\n"))
    assert single.pick().name == "only"


def test_an_unknown_account_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown account 'work'; .* defines personal, local, lab"):
        load_accounts(write(tmp_path, FULL)).pick("work")


def test_several_accounts_without_a_default_need_a_choice(tmp_path: Path) -> None:
    accounts = load_accounts(write(tmp_path, "accounts:\n  a: {maildir: a}\n  b: {maildir: b}\n"))
    with pytest.raises(UsageError, match=r"several accounts \(a, b\); choose one with --account"):
        accounts.pick()


def test_a_password_written_in_the_file_is_refused_without_repeating_it(tmp_path: Path) -> None:
    found = problems_of(tmp_path, "accounts:\n  a:\n    imap: {host: h.example, username: u, password: hunter2}\n")
    assert any("accounts.yaml:3:42: error: passwords are not written in the accounts file; use password_env" in p for p in found)
    assert not any("hunter2" in p for p in found)


def test_no_dataclass_repr_shows_where_the_password_comes_from(tmp_path: Path) -> None:
    accounts = load_accounts(write(tmp_path, FULL))
    assert "MAILRULES_TEST_PW" not in repr(accounts) and "pass show" not in repr(accounts)


@pytest.mark.parametrize(
    ("imap", "message"),
    [
        ("{host: mail.example.com, tls: none, username: u, password_env: P}", "tls: none would send the password unencrypted"),
        ("{host: h.example, username: u}", "'imap' needs one of password_env, password_command, password_keyring"),
        ("{host: h.example, username: u, password_env: P, password_command: c}", "'imap' takes only one of"),
        ("{host: h.example, username: u, password_keyring: false}", "'password_keyring' must be True"),
        ("{host: h.example, username: u, password_env: P, tls: tls}", "'tls' must be 'ssl', 'starttls' or 'none'"),
        ("{host: h.example, username: u, password_env: P, port: 0}", "'port' must be at least 1"),
        ("{host: h.example, password_env: P}", "missing 'username' in IMAP settings"),
    ],
)
def test_imap_settings_problems(tmp_path: Path, imap: str, message: str) -> None:
    found = problems_of(tmp_path, f"accounts:\n  a:\n    imap: {imap}\n")
    assert any(message in p for p in found), found


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "localhost"])
def test_plain_text_is_allowed_to_loopback(tmp_path: Path, host: str) -> None:
    text = f"accounts:\n  a:\n    imap: {{host: '{host}', tls: none, username: u, password_env: P}}\n"
    assert load_accounts(write(tmp_path, text)).pick().imap.tls == "none"


def test_plain_text_elsewhere_needs_allow_insecure(tmp_path: Path) -> None:
    text = "accounts:\n  a:\n    imap: {host: mail.lan, tls: none, allow_insecure: true, username: u, password_env: P}\n"
    assert load_accounts(write(tmp_path, text)).pick().imap.allow_insecure is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("accounts:\n  a:\n    maildir: m\n    smtp: {host: s.example, username: u}\n", "SMTP with a username needs one of"),
        ("accounts:\n  a:\n    maildir: m\n    smtp: {host: s.example, password_env: P}\n", "an SMTP password source needs a username"),
        ("accounts:\n  a:\n    maildir: m\n    smtp: {host: s.example, tls: none}\n", "tls: none would send the password unencrypted"),
        ("accounts:\n  a:\n    maildir: m\n    addresses: [not an address]\n", "'not an address' is not an e-mail address"),
        ("accounts:\n  a:\n    maildir: m\ndefault: b\n", "default account 'b' is not defined"),
        ("accounts:\n  a:\n    addresses: [a@b.example]\n", "needs one of imap, maildir"),
        ("accounts:\n  a:\n    maildir: m\n    imap: {host: h, username: u, password_env: P}\n", "takes only one of imap, maildir"),
        ("accounts:\n  a:\n    maildr: m\n", "unknown key 'maildr' in account; did you mean 'maildir'?"),
        ("accounts: {}\n", "'accounts' must not be empty"),
    ],
)
def test_account_problems(tmp_path: Path, text: str, message: str) -> None:
    found = problems_of(tmp_path, text)
    assert any(message in p for p in found), found


def test_a_missing_accounts_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="accounts file not found"):
        load_accounts(tmp_path / "nope.yaml")


def test_the_default_accounts_file_is_under_the_config_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_accounts_path() == str(tmp_path / "mailrules" / "accounts.yaml")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_accounts_path() == str(tmp_path / ".config" / "mailrules" / "accounts.yaml")


# ---------------------------------------------------------------- passwords

WHERE = Loc("accounts.yaml", 5, 7)


def imap_with(kind: str, reference: str = "") -> ImapSettings:
    return ImapSettings("imap.example.com", "alice", SecretSource(kind, reference, WHERE))  # type: ignore[arg-type]


def test_a_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILRULES_TEST_PW", "s3cret")
    assert resolve_password(imap_with("env", "MAILRULES_TEST_PW")) == "s3cret"


def test_an_unset_variable_is_named_with_its_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILRULES_TEST_PW", raising=False)
    with pytest.raises(UsageError, match="accounts.yaml:5:7: environment variable MAILRULES_TEST_PW"):
        resolve_password(imap_with("env", "MAILRULES_TEST_PW"))


def test_a_password_command_gives_its_first_line() -> None:
    command = f"{sys.executable} -c \"print('pa ss  '); print('url: x')\""
    assert resolve_password(imap_with("command", command)) == "pa ss  "


def test_a_failing_password_command_says_why_without_its_output() -> None:
    command = f"{sys.executable} -c \"import sys; print('s3cret'); sys.exit('gpg: decryption failed')\""
    with pytest.raises(UsageError, match="failed with exit status 1: gpg: decryption failed") as raised:
        resolve_password(imap_with("command", command))
    assert "s3cret" not in str(raised.value)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("/nonexistent/pass show mail", "cannot run password_command '/nonexistent/pass'"),
        ("'unbalanced", "cannot split password_command"),
        (f"{sys.executable} -c pass", "printed no password"),
    ],
)
def test_password_command_problems(command: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_password(imap_with("command", command))


def test_a_password_command_that_hangs_times_out() -> None:
    command = f"{sys.executable} -c \"import time; time.sleep(10)\""
    with pytest.raises(UsageError, match="did not finish within 0.2 s"):
        resolve_password(imap_with("command", command), timeout=0.2)


def test_the_keyring_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # makes `import keyring` fail
    with pytest.raises(UsageError, match="password_keyring needs the 'keyring' package"):
        resolve_password(imap_with("keyring"))


def test_the_keyring_is_asked_for_host_and_user(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = {("mailrules:imap.example.com", "alice"): "from-keyring"}
    fake = types.SimpleNamespace(get_password=lambda service, user: stored.get((service, user)))
    monkeypatch.setitem(sys.modules, "keyring", fake)
    assert resolve_password(imap_with("keyring")) == "from-keyring"
    stored.clear()
    with pytest.raises(UsageError, match="keyring set mailrules:imap.example.com alice"):
        resolve_password(imap_with("keyring"))


def test_smtp_without_login_has_no_password() -> None:
    with pytest.raises(UsageError, match="no password source"):
        resolve_password(SmtpSettings("localhost", 25, "none"))


PRESETS = """\
accounts:
  personal:
    provider: gmail
    imap: {username: me@gmail.com, password_command: "pass show gmail-app"}
  work:
    provider: outlook
    imap: {username: me@contoso.com, oauth2: {client_id: 0f1e2d3c}}
  fm:
    provider: fastmail
    imap: {username: me@fastmail.com, password_env: FM}
    smtp: {port: 587, tls: starttls, username: me@fastmail.com, password_env: FM}
  lab:
    provider: icloud
    imap: {host: 127.0.0.1, port: 1143, tls: none, username: test, password_env: P}
"""


def test_a_provider_preset_fills_the_servers_and_the_smtp_sign_in(tmp_path: Path) -> None:
    accounts = load_accounts(write(tmp_path, PRESETS))
    gmail = accounts.pick("personal")
    assert (gmail.imap.host, gmail.imap.port, gmail.imap.tls) == ("imap.gmail.com", 993, "ssl")
    assert (gmail.smtp.host, gmail.smtp.port, gmail.smtp.tls) == ("smtp.gmail.com", 465, "ssl")
    assert gmail.smtp.username == "me@gmail.com" and gmail.smtp.password == gmail.imap.password


def test_a_preset_names_the_oauth2_provider_of_its_servers(tmp_path: Path) -> None:
    work = load_accounts(write(tmp_path, PRESETS)).pick("work")
    assert work.imap.host == "outlook.office365.com" and work.imap.oauth2.provider == "microsoft"
    assert (work.smtp.host, work.smtp.port, work.smtp.tls) == ("smtp.office365.com", 587, "starttls")
    assert work.smtp.oauth2 == work.imap.oauth2


def test_every_preset_value_can_be_overridden(tmp_path: Path) -> None:
    accounts = load_accounts(write(tmp_path, PRESETS))
    fastmail, lab = accounts.pick("fm"), accounts.pick("lab")
    assert (fastmail.smtp.host, fastmail.smtp.port, fastmail.smtp.tls) == ("smtp.fastmail.com", 587, "starttls")
    assert (lab.imap.host, lab.imap.port, lab.imap.tls) == ("127.0.0.1", 1143, "none")
    assert lab.smtp.host == "smtp.mail.me.com"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("accounts:\n  a:\n    imap: {username: u, password_env: P}\n",
         "accounts.yaml:3:11: error: host is missing (or name a provider preset"),
        ("accounts:\n  a:\n    provider: icloud\n    imap: {username: u, oauth2: {client_id: x}}\n",
         "provider: icloud has no built-in OAuth2 sign-in: use an app-specific password"),
        ("accounts:\n  a:\n    imap: {host: h.example, username: u, oauth2: {client_id: x}}\n",
         "oauth2 with a client_id needs provider: google, microsoft or custom"),
        ("accounts:\n  a:\n    provider: gmail\n    maildir: m\n",
         "a provider preset describes IMAP and SMTP servers, not a Maildir"),
        ("accounts:\n  a:\n    provider: yahoo\n    imap: {username: u, password_env: P}\n",
         "'provider' must be"),
    ],
)
def test_preset_problems(tmp_path: Path, text: str, message: str) -> None:
    found = problems_of(tmp_path, text)
    assert any(message in p for p in found), found


def test_the_readme_preset_examples_load_with_their_servers(tmp_path: Path) -> None:
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Provider presets", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    accounts = load_accounts(write(tmp_path, block))
    hosts = {account.name: (account.imap.host, account.smtp.host) for account in accounts.accounts}
    assert hosts == {"gmail": ("imap.gmail.com", "smtp.gmail.com"),
                     "work": ("outlook.office365.com", "smtp.office365.com"),
                     "fastmail": ("imap.fastmail.com", "smtp.fastmail.com"),
                     "icloud": ("imap.mail.me.com", "smtp.mail.me.com")}
    assert accounts.pick("work").imap.oauth2.provider == "microsoft"

def test_an_account_names_its_subaddress_separator(tmp_path: Path) -> None:
    text = "accounts:\n  a:\n    maildir: m\n    subaddress_separator: '-+'\n  b:\n    maildir: m\n"
    a, b = load_accounts(write(tmp_path, text)).accounts
    assert (a.subaddress_separator, b.subaddress_separator) == ("-+", "+")


@pytest.mark.parametrize("separator", ["", "a@", "+ "])
def test_a_subaddress_separator_is_printable_ascii_without_at_or_space(tmp_path: Path, separator: str) -> None:
    text = f"accounts:\n  a:\n    maildir: m\n    subaddress_separator: '{separator}'\n"
    assert problems_of(tmp_path, text)
