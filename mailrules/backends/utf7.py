"""IMAP's modified UTF-7 (RFC 3501 §5.1.3), the encoding of non-ASCII folder names.

Dovecot writes Maildir++ folder directories in it too, so the Maildir backend needs it
without being an IMAP client: the codec is a dozen lines of stdlib, and keeping it here
leaves imapclient to the IMAP backend alone.
"""

from __future__ import annotations

import binascii
import re

# Printable ASCII stands for itself; everything else goes into &...- runs of base64 UTF-16.
_DIRECT = re.compile(r"[\x20-\x7e]+")
_SHIFTED = re.compile(r"&([^-]*)(?:-|$)")


def encode(name: str) -> str:
    r"""A folder name in modified UTF-7.

    >>> encode("Grüße & Köln"), encode("日本")
    ('Gr&APwA3w-e &- K&APY-ln', '&ZeVnLA-')
    """
    out, start = [], 0
    for found in _DIRECT.finditer(name):
        out.append(_shift(name[start:found.start()]))
        out.append(found.group().replace("&", "&-"))
        start = found.end()
    out.append(_shift(name[start:]))
    return "".join(out)


def _shift(text: str) -> str:
    if not text:
        return ""
    coded = binascii.b2a_base64(text.encode("utf-16be"), newline=False).rstrip(b"=").replace(b"/", b",")
    return "&" + coded.decode("ascii") + "-"


def decode(name: str) -> str:
    """The folder name that a modified UTF-7 string stands for; ValueError (or its
    UnicodeDecodeError) when it isn't one.

    >>> decode("Gr&APwA3w-e &- K&APY-ln")
    'Grüße & Köln'
    """
    return _SHIFTED.sub(_unshift, name)


def _unshift(found: re.Match[str]) -> str:
    coded = found.group(1)
    if not coded:
        return "&"
    return ("+" + coded.replace(",", "/") + "-").encode("ascii").decode("utf-7")
