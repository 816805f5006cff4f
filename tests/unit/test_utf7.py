"""Our modified UTF-7 codec against imapclient's, on folder names of every kind."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from imapclient import imap_utf7

from mailrules.backends import utf7

NAMES = st.text(alphabet=st.sampled_from("ab&-.~\\ éü日\U0001F600\x7f\x1f+,/"), max_size=12) | st.text(max_size=8)


@given(NAMES)
def test_encoding_agrees_with_imapclient(name: str) -> None:
    assert utf7.encode(name) == imap_utf7.encode(name).decode("ascii")


@given(NAMES)
def test_decoding_inverts_encoding(name: str) -> None:
    assert utf7.decode(utf7.encode(name)) == imap_utf7.decode(imap_utf7.encode(name)) == name


@pytest.mark.parametrize("text", ["a&b", "&Zx", "&AP"])
def test_a_name_that_is_not_modified_utf7_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        utf7.decode(text)
