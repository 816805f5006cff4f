"""What a reply template sees: the message, the rule and the account, by name.

Both the rule-file check (every template rendered once against a sample message) and the
reply renderer build their variables here, so a name ``validate`` accepts is a name a
real reply has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailrules.message import MessageView
from mailrules.model import FlagTest, Rule


@dataclass(frozen=True, slots=True)
class Identity:
    """The account replies are sent from."""

    name: str
    addresses: tuple[str, ...]

    @property
    def address(self) -> str | None:
        return self.addresses[0] if self.addresses else None

    def owns(self, address: str) -> bool:
        return address.casefold() in {own.casefold() for own in self.addresses}


class HeaderMap(dict):  # type: ignore[type-arg]
    """Header values by name, looked up case-insensitively (``message.headers["x-ticket"]``)."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


def template_variables(message: MessageView, rule: Rule, identity: Identity) -> dict[str, object]:
    def first(name: str) -> str:
        values = message.header_values(name)
        return values[0] if values else ""

    headers = HeaderMap({name.lower(): first(name) for name in message.header_names()})
    return {
        "message": {
            "subject": message.subject, "from": first("From"), "to": first("To"), "cc": first("Cc"),
            "date": first("Date"), "message_id": message.message_id or "", "headers": headers,
            "text": _safe_body(message),
        },
        "rule": {"name": rule.name, "description": rule.description or ""},
        "account": {"name": identity.name, "address": identity.address or "", "addresses": list(identity.addresses)},
    }


class _SampleHeaders(HeaderMap):
    """Every header a template asks for exists in the sample: which ones mail carries is up to the mail."""

    def __getitem__(self, key: str) -> str:
        return super().get(key.lower(), "sample value")

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), "sample value")


SAMPLE_MESSAGE = (b"From: Sam Sample <sam@example.net>\r\nTo: You <you@example.org>\r\nCc: cc@example.org\r\n"
                  b"Subject: A sample subject\r\nDate: Fri, 20 Nov 2026 10:00:00 +0000\r\n"
                  b"Message-ID: <sample@example.net>\r\n\r\nA sample body.\r\n")


def sample_variables() -> dict[str, object]:
    """What a template sees, for a made-up message: ``validate`` renders every template with it."""
    rule = Rule("sample rule", FlagTest("\\Seen", False), (), description="A sample description")
    variables = template_variables(MessageView.from_bytes(SAMPLE_MESSAGE), rule,
                                   Identity("sample", ("you@example.org",)))
    message = variables["message"]
    assert isinstance(message, dict)
    message["headers"] = _SampleHeaders(message["headers"])
    return variables


def _safe_body(message: MessageView) -> str:
    try:
        return message.body_text()
    except Exception:  # noqa: BLE001 - a body we can't read must not stop the reply
        return ""
