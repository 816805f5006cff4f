"""The JSON Schemas users' editors see are the ones the package validates with."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mailrules.schema import load_schema
from mailrules.yamlsrc import read_yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = ["rules", "accounts", "ruletest"]


@pytest.mark.parametrize("name", SCHEMAS)
def test_the_top_level_copy_is_identical_to_the_package_data(name: str) -> None:
    packaged = (REPO / "mailrules" / "schemas" / f"{name}.schema.json").read_bytes()
    assert (REPO / "schemas" / f"{name}.schema.json").read_bytes() == packaged


@pytest.mark.parametrize("name", SCHEMAS)
def test_each_schema_is_valid_2020_12_with_an_id(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://mailrules.dev/schemas/{name}.schema.json"


def subschemas(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from subschemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from subschemas(value, f"{where}/{index}")


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_property_has_a_description(name: str) -> None:
    undocumented = [
        f"{where}/{key}"
        for where, node in subschemas(load_schema(name))
        for key, value in node.get("properties", {}).items()
        if not (isinstance(value, dict) and value.get("description"))
    ]
    assert undocumented == []


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_mapping_with_named_keys_refuses_unknown_keys(name: str) -> None:
    open_ended = [where for where, node in subschemas(load_schema(name)) if "properties" in node and node.get("additionalProperties") is not False]
    assert open_ended == []


def condition_keys() -> set[str]:
    return set(load_schema("rules")["$defs"]["condition"]["properties"])


def test_the_rules_schema_has_exactly_the_condition_keys_of_the_language() -> None:
    assert condition_keys() == {
        "from", "to", "cc", "bcc", "reply_to", "sender", "subject", "list_id", "recipient", "envelope_to", "envelope_from", "header",
        "body", "text", "larger", "smaller", "older_than", "newer_than", "before", "since",
        "sent_before", "sent_since", "seen", "answered", "flagged", "deleted", "draft", "keyword",
        "has_attachment", "attachment", "mime_header", "count", "sent", "arrived", "all", "any", "not",
    }  # fmt: skip


def test_the_rules_schema_has_exactly_the_actions_and_reply_options_of_the_language() -> None:
    defs = load_schema("rules")["$defs"]
    assert set(defs["action"]["else"]["properties"]) == {"move", "copy", "trash", "flag", "unflag", "reply", "redirect"}
    assert defs["action"]["then"]["enum"] == ["delete", "trash", "stop"]
    assert set(defs["reply"]["properties"]) == {"subject", "template", "body", "from", "once_per", "save_to", "require_recipient"}


def validate(instance: Any) -> list[str]:
    return [error.message for error in Draft202012Validator(load_schema("rules")).iter_errors(instance)]


def test_the_example_rule_files_are_valid_for_editors_too() -> None:
    # Read like an editor's YAML 1.2 reader: an unquoted 2025-01-01 stays text.
    for path in [REPO / "rules.example.yaml", REPO / "examples" / "team" / "common.yaml"]:
        assert validate(read_yaml(path).data) == []


@pytest.mark.parametrize(
    "when",
    [
        {"subject": {"contains": "a", "regex": "b"}},
        {"subject": {"domain": "example.com"}},
        {"subject": {"case_sensitive": True}},
        {"header": {"is": "x"}},
        {"larger": "1.5M"},
        {"older_than": "30"},
        {"before": "31.01.2025"},
        {"seen": "yes"},
        "everything",
    ],
)
def test_the_rules_schema_alone_catches_what_editors_should_flag(when: Any) -> None:
    assert validate({"version": 1, "rules": [{"name": "a", "when": when, "then": ["stop"]}]}) != []


def test_reply_needs_exactly_one_of_template_and_body() -> None:
    rule = {"name": "a", "when": "all"}
    assert validate({"version": 1, "rules": [rule | {"then": [{"reply": {"body": "x"}}]}]}) == []
    assert validate({"version": 1, "rules": [rule | {"then": [{"reply": {"subject": "x"}}]}]}) != []
    assert validate({"version": 1, "rules": [rule | {"then": [{"reply": {"body": "x", "template": "t"}}]}]}) != []


def test_the_installed_package_carries_and_loads_the_schemas(tmp_path: Path) -> None:
    """Build the package the way a wheel is built and load the schema from the result, not from this tree."""
    source = tmp_path / "src"
    shutil.copytree(REPO / "mailrules", source / "mailrules", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", source)
    build = subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()", "build_py", "--build-lib", str(tmp_path / "lib")],
        cwd=source, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    probe = "import json, mailrules.schema as l; print(json.dumps([l.__file__, l.load_schema('rules')['$id']]))"
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "lib")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    module_file, schema_id = json.loads(run.stdout)
    assert Path(module_file).is_relative_to(tmp_path / "lib")
    assert schema_id == "https://mailrules.dev/schemas/rules.schema.json"
