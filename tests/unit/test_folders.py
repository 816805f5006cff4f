"""Folder globs (spec §7): ``*`` crosses the hierarchy delimiter, ``%`` does not, INBOX ignores case."""

from __future__ import annotations

import pytest

from mailrules.folders import folder_matches, normalise_folder, resolve_folders, same_folder


@pytest.mark.parametrize(
    ("pattern", "folder", "expected"),
    [
        ("INBOX", "INBOX", True),
        ("inbox", "INBOX", True),
        ("INBOX", "Inbox", True),
        ("INBOX/Sub", "inbox/Sub", True),
        ("INBOX/sub", "INBOX/Sub", False),  # only INBOX itself ignores case
        ("Archive", "archive", False),
        ("Lists/*", "Lists/python", True),
        ("Lists/*", "Lists/python/dev", True),
        ("Lists/%", "Lists/python", True),
        ("Lists/%", "Lists/python/dev", False),
        ("Lists/%/dev", "Lists/python/dev", True),
        ("Lists/*", "Lists", False),
        ("Lists*", "Lists", True),
        ("*", "INBOX", True),
        ("*", "a/b/c", True),
        ("%", "INBOX", True),
        ("%", "a/b", False),
        ("Lists/python", "Lists/python", True),
        ("Lists/python", "Lists/pythonic", False),
        ("Li.ts", "Lists", False),  # regex characters mean themselves
        ("Work (old)", "Work (old)", True),
        ("[Gmail]/*", "[Gmail]/Sent Mail", True),
    ],
)
def test_folder_globs_work_like_imap_list(pattern: str, folder: str, expected: bool) -> None:
    assert folder_matches(pattern, folder, "/") is expected


@pytest.mark.parametrize(
    ("pattern", "folder", "expected"),
    [
        ("Lists.%", "Lists.python", True),
        ("Lists.%", "Lists.python.dev", False),
        ("Lists.*", "Lists.python.dev", True),
        ("inbox.Sub", "INBOX.Sub", True),
    ],
)
def test_the_delimiter_is_the_servers(pattern: str, folder: str, expected: bool) -> None:
    assert folder_matches(pattern, folder, ".") is expected


def test_without_a_hierarchy_percent_matches_every_name() -> None:
    assert folder_matches("%", "a/b", None)


def test_inbox_is_normalised_only_as_a_whole_first_level() -> None:
    assert [normalise_folder(name, "/") for name in ("inbox", "Inbox/Sub", "Inboxes", "Other/inbox")] == [
        "INBOX",
        "INBOX/Sub",
        "Inboxes",
        "Other/inbox",
    ]


def test_same_folder_ignores_the_case_of_inbox_only() -> None:
    assert same_folder("inbox", "INBOX", "/")
    assert not same_folder("Archive", "archive", "/")


def test_resolve_folders_lists_matches_in_pattern_order_once_each_and_the_patterns_that_matched_nothing() -> None:
    existing = ["INBOX", "Lists/python", "Lists/rust", "Archive", "Lists/python/dev"]
    matched, unmatched = resolve_folders(["Lists/%", "inbox", "Lists/*", "Gone/*", "Missing"], existing, "/")
    assert matched == ["Lists/python", "Lists/rust", "INBOX", "Lists/python/dev"]
    assert unmatched == ["Gone/*", "Missing"]


def test_resolve_folders_keeps_the_servers_spelling() -> None:
    assert resolve_folders(["INBOX"], ["Inbox"], "/") == (["Inbox"], [])
