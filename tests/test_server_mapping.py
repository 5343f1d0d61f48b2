"""The AuthZEN mapping (``authzen.yaml``) and the server config: what each source reads, and
errors with ``file:line:col``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from aigre_policy.server.authzen_mapping import MappingError, load_mapping
from aigre_policy.server.config import ConfigError, load_config

REQUEST = {
    "subject": {"type": "user", "id": "u-1", "identity": "pid-1"},
    "action": {"name": "edit"},
    "resource": {"type": "doc", "id": "d-9", "properties": {"ownerID": "ana@x"}},
}


def _mapping(tmp_path: Path, spec: dict) -> Path:
    (tmp_path / "users.json").write_text(
        json.dumps({"pid-1": {"id": "ana@x", "email": "ana@x", "roles": ["editor"]}})
    )
    path = tmp_path / "authzen.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_sources_read_paths_lists_defaults_constants_and_the_directory(tmp_path):
    mapping = load_mapping(
        _mapping(
            tmp_path,
            {
                "subjects": {
                    "directory": "users.json",
                    "aliases": ["email"],
                    "lookup": ["subject.identity", "subject.id"],
                },
                "actor": {"id": "subject_record.id", "kind": {"value": "human"}, "trust": 1},
                "action": {
                    "id": {"digest": "request"},
                    "kind": "action.name",
                    "owner": ["resource.ownerID", "resource.properties.ownerID"],
                    "env": {"from": "context.environment", "default": "production"},
                    "absent": "resource.properties.nothing",
                    "nested": {"type": "resource.type", "roles": "subject_record.roles"},
                },
            },
        )
    )
    action, actor = mapping.proposal(REQUEST)
    assert action["kind"] == "edit"
    assert action["owner"] == "ana@x"
    assert action["env"] == "production"
    assert "absent" not in action
    assert action["nested"] == {"type": "doc", "roles": ["editor"]}
    assert actor == {"id": "ana@x", "kind": "human", "trust": 1}
    # the same request names the same action; another request another one
    assert mapping.proposal(REQUEST)[0]["id"] == action["id"]
    other = {**REQUEST, "resource": {**REQUEST["resource"], "id": "d-10"}}
    assert mapping.proposal(other)[0]["id"] != action["id"]
    # found by an alias; unknown subjects get no actor
    by_email = {**REQUEST, "subject": {"type": "user", "id": "ana@x"}}
    assert mapping.proposal(by_email)[1] == actor
    stranger = {**REQUEST, "subject": {"type": "user", "id": "nobody"}}
    assert mapping.proposal(stranger)[1] is None


def test_a_path_outside_the_request_is_refused(tmp_path):
    with pytest.raises(MappingError, match="does not start with one of subject"):
        load_mapping(_mapping(tmp_path, {"action": {"kind": "input.action"}}))


def test_a_mapping_breaking_its_shape_names_file_line_and_column(tmp_path):
    path = _mapping(tmp_path, {"action": {"kind": "action.name"}, "subjects": {"key": 3}})
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert str(caught.value).startswith(f"{path}:4:3: subjects.directory: Field required")


def test_a_missing_directory_is_refused(tmp_path):
    spec = {"action": {"kind": "action.name"}, "subjects": {"directory": "nope.json"}}
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(_mapping(tmp_path, spec))


def test_config_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "server.yaml"
    path.write_text("log: decisions.jsonl\nauth:\n  jwt:\n    jwks_file: keys.json\n")
    config = load_config(path)
    assert config.log == tmp_path / "conf" / "decisions.jsonl"
    assert config.auth is not None and config.auth.jwt is not None
    assert config.auth.jwt.jwks_file == tmp_path / "conf" / "keys.json"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("limits: {max_body_bytes: 12}\n", ":1:26: limits.max_body_bytes:"),
        ("nope: 1\n", ":1:7: nope: Extra inputs are not permitted"),
        ("ledger: [\n", ":2:1: not valid YAML"),
    ],
)
def test_config_errors_are_one_line_with_file_line_and_column(tmp_path, text, where):
    path = tmp_path / "server.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}{where}" in str(caught.value)
