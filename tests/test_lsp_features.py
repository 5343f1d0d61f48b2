"""The language server's answers, asked directly: hover, definition, completion, diagnostics.

``tests/test_lsp.py`` runs the same through a real client session; these cover the
cases one by one, fast, without a server process.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from conftest import write_pack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigre_policy.compiler import compile_pack
from aigre_policy.lsp import features
from aigre_policy.lsp.project import PackView, analyse

ENVELOPES = """\
envelope autonomy {
  llm_may: ["rollback", "restart", "scale"]
  max_age: 15m
}
envelope cost {
  max_action_usd: 250
}
"""

GUARD = """\
# what agents may do on their own
rule llm-outside-its-remit {
  title: "LLM agents stay inside their remit"
  severity: high
  deny when action.actor.kind == "llm" and action.kind not in autonomy.llm_may
  because "LLM agents may {autonomy.llm_may}; this one proposed {action.kind}"
}

rule costly-action {
  category: cost
  escalate to ["finops"] when action.cost.estimated_usd > cost.max_action_usd
    and any(f in context.change_freezes ?? []: f.starts_at <= context.now)
}

usage spend_usd = sum(action.cost.estimated_usd) over calendar_month

test "a restart by an agent" {
  action from "fixtures/restart.yaml"
  expect deny by llm-outside-its-remit
}
"""


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pack for the module: no test writes to it (edits are unsaved text)."""
    return write_pack(
        tmp_path_factory.mktemp("features") / "guard",
        {"envelopes.aigre": ENVELOPES, "guard.aigre": GUARD},
        manifest={"envelopes": {"cost": {"max_action_usd": 500}}},
        files={"fixtures/restart.yaml": "action: {}\n"},
    )


@functools.cache
def _on_disk(file: str) -> PackView:
    return analyse(Path(file), {})


def _guard(pack: Path) -> tuple[str, str]:
    path = (pack / "policies" / "guard.aigre").resolve()
    return str(path), path.read_text(encoding="utf-8")


def _at(text: str, needle: str, into: int = 0) -> tuple[int, int]:
    """0-based line and column of ``needle``'s first occurrence, ``into`` characters in."""
    index = text.index(needle) + into
    line = text.count("\n", 0, index)
    return line, index - (text.rfind("\n", 0, index) + 1)


def _hover(pack: Path, needle: str, into: int = 0, text: str | None = None) -> str | None:
    file, source = _guard(pack)
    source = text if text is not None else source
    view = _on_disk(file) if text is None else analyse(Path(file), {file: source}, _on_disk(file))
    found = features.hover(view, file, source, *_at(source, needle, into))
    return None if found is None else found.markdown


def _complete(pack: Path, text: str, needle: str, into: int) -> list[str]:
    file, _ = _guard(pack)
    view = (
        _on_disk(file)
        if text == _guard(pack)[1]
        else analyse(Path(file), {file: text}, _on_disk(file))
    )
    return [item.label for item in features.complete(view, file, text, *_at(text, needle, into))]


# ------------------------------------------------------------------ hover


def test_hover_on_a_field_gives_its_type_and_the_schema_description(pack):
    shown = _hover(pack, "actor.kind", 1)
    assert shown is not None
    assert "**action.actor**: `object Actor`" in shown
    assert "Who claims to propose it" in shown  # the schema's description
    assert "claim" in shown and "context.actor" in shown  # the trust boundary, stated


def test_hover_on_an_enum_field_lists_every_value(pack):
    shown = _hover(pack, "kind not in", 1)
    assert shown is not None
    assert shown.startswith("**action.kind**: `string, one of")
    assert '"data_export"' in shown  # past the six values the type's short form shows


def test_hover_on_an_optional_field_says_how_to_read_it(pack):
    shown = _hover(pack, "change_freezes", 2)
    assert shown is not None
    assert "optional" in shown and "`has context.change_freezes`" in shown
    assert "attested" in shown


def test_hover_on_an_envelope_value_shows_the_value_pack_yaml_sets(pack):
    shown = _hover(pack, "cost.max_action_usd", 7)
    assert shown is not None
    assert "**cost.max_action_usd**: `integer`" in shown
    assert "value: `500`" in shown and "written `250`" in shown


def test_hover_on_a_duration_envelope_value_reads_as_a_duration(new_pack):
    root = new_pack({"main.aigre": ENVELOPES + "rule r { deny when autonomy.max_age > 1h }\n"})
    file = str((root / "policies" / "main.aigre").resolve())
    text = ENVELOPES + "rule r { deny when autonomy.max_age > 1h }\n"
    view = analyse(Path(file), {})
    found = features.hover(view, file, text, *_at(text, "autonomy.max_age", 10))
    assert found is not None and "value: `15m`" in found.markdown


def test_hover_on_an_envelope_value_where_it_is_declared(pack):
    file = str((pack / "policies" / "envelopes.aigre").resolve())
    found = features.hover(_on_disk(file), file, ENVELOPES, *_at(ENVELOPES, "max_action_usd", 2))
    assert found is not None
    assert "**cost.max_action_usd**" in found.markdown


def test_hover_on_a_rule_id_gives_its_title_and_verdict(pack):
    shown = _hover(pack, "by llm-outside-its-remit", 8)
    assert shown is not None
    assert "**rule** `llm-outside-its-remit`" in shown
    assert "*LLM agents stay inside their remit*" in shown
    assert "`deny`" in shown and "risk, high" in shown
    assert "policies/guard.aigre:2" in shown


def test_hover_on_an_item_variable_reads_the_list_it_ranges_over(pack):
    shown = _hover(pack, "f.starts_at", 3)
    assert shown is not None and "**f.starts_at**: `timestamp`" in shown


def test_hover_on_a_usage_shows_its_declaration(pack):
    text = GUARD.replace("cost.max_action_usd\n", "cost.max_action_usd + usage.spend_usd\n")
    shown = _hover(pack, "usage.spend_usd", 7, text)
    assert shown is not None
    assert "**usage.spend_usd**: `number`" in shown
    assert "usage spend_usd = sum(action.cost.estimated_usd) over calendar_month" in shown


def test_an_item_variable_bound_to_itself_does_not_loop(pack):
    file, text = _guard(pack)
    odd = text.replace("any(f in context.change_freezes ?? []", "any(f in f.items ?? []")
    view = analyse(Path(file), {file: odd}, _on_disk(file))
    assert features.hover(view, file, odd, *_at(odd, "f.starts_at", 3)) is None


def test_a_rule_named_like_an_envelope_does_not_hide_the_envelope(new_pack):
    text = "envelope cost { max: 1 }\nrule cost { deny when cost.max > 0 }\n"
    root = new_pack({"main.aigre": text})
    file = str((root / "policies" / "main.aigre").resolve())
    view = analyse(Path(file), {})
    found = features.hover(view, file, text, *_at(text, "cost.max", 1))
    assert found is not None and found.markdown.startswith("**envelope** `cost`")
    found = features.hover(view, file, text, *_at(text, "rule cost", 6))
    assert found is not None and found.markdown.startswith("**rule** `cost`")


def test_no_hover_in_comments_or_plain_strings(pack):
    assert _hover(pack, "agents may do", 1) is None  # a comment
    assert _hover(pack, "LLM agents may", 5) is None  # message text outside {...}
    assert _hover(pack, "{action.kind}", 3) is not None  # inside an interpolation


def test_hover_works_while_the_file_does_not_parse(pack):
    _, source = _guard(pack)
    broken = source.replace("severity: high", "severity: high ][")
    shown = _hover(pack, "actor.kind", 7, broken)
    assert shown is not None and "**action.actor.kind**" in shown


# ------------------------------------------------------------------ definition


def _definition(pack: Path, needle: str, into: int) -> features.Target | None:
    file, text = _guard(pack)
    return features.definition(_on_disk(file), file, text, *_at(text, needle, into))


def test_definition_of_an_envelope_value_is_in_the_file_that_declares_it(pack):
    target = _definition(pack, "cost.max_action_usd", 7)
    assert target is not None and target.span is not None
    assert target.file == str((pack / "policies" / "envelopes.aigre").resolve())
    assert (target.span.line, target.span.column) == (6, 3)


def test_definition_of_an_envelope_name(pack):
    target = _definition(pack, "autonomy.llm_may", 2)
    assert target is not None and target.span is not None
    assert target.file.endswith("envelopes.aigre") and target.span.line == 1


def test_definition_of_a_rule_named_by_a_test(pack):
    target = _definition(pack, "by llm-outside-its-remit", 10)
    assert target is not None and target.span is not None
    assert (target.file, target.span.line, target.span.column) == (_guard(pack)[0], 2, 6)


def test_definition_of_a_test_fixture_is_the_file(pack):
    target = _definition(pack, "fixtures/restart", 3)
    assert target == features.Target(str((pack / "fixtures" / "restart.yaml").resolve()))


def test_a_fixture_outside_the_pack_is_no_place_to_jump(pack):
    (pack.parent / "secret.yaml").write_text("x: 1\n", encoding="utf-8")
    file, text = _guard(pack)
    outside = text.replace("fixtures/restart.yaml", "../secret.yaml")
    view = analyse(Path(file), {file: outside}, _on_disk(file))
    assert features.definition(view, file, outside, *_at(outside, "secret", 1)) is None


def test_no_definition_for_an_input_field(pack):
    assert _definition(pack, "actor.kind", 1) is None


# ------------------------------------------------------------------ completion


def test_completion_after_a_dot_lists_the_schema_fields(pack):
    _, text = _guard(pack)
    text = text.replace('action.actor.kind == "llm"', "action.actor.")
    labels = _complete(pack, text, "action.actor.", len("action.actor."))
    assert labels == ["kind", "id", "model", "trust", "on_behalf_of"]


def test_completion_of_an_envelope_and_the_usages(pack):
    _, text = _guard(pack)
    assert _complete(pack, text, "cost.max_action_usd", 5) == ["max_action_usd"]
    text = text.replace("cost.max_action_usd\n", "usage.\n")
    assert _complete(pack, text, "usage.\n", 6) == ["spend_usd"]


def test_completion_of_enum_values_inside_quotes_and_before_them(pack):
    _, text = _guard(pack)
    typing = text.replace('action.actor.kind == "llm"', 'action.actor.kind == "')
    assert _complete(pack, typing, 'kind == "', 9) == ["human", "llm", "automation"]
    bare = text.replace('action.actor.kind == "llm"', "action.actor.kind == ")
    assert _complete(pack, bare, "kind == ", 8) == ['"human"', '"llm"', '"automation"']


def test_completion_of_enum_values_in_a_list(pack):
    _, text = _guard(pack)
    typing = text.replace("action.kind not in autonomy.llm_may", 'action.kind in ["rollback", "')
    labels = _complete(pack, typing, '["rollback", "', 14)
    assert "deploy" in labels and "data_export" in labels


def test_completion_of_an_item_variable(pack):
    _, text = _guard(pack)
    labels = _complete(pack, text, "f.starts_at", 2)
    assert labels == ["name", "starts_at", "ends_at", "services", "environments"]


def test_completion_of_rule_ids_in_an_expectation(pack):
    _, text = _guard(pack)
    assert _complete(pack, text, "by llm-", 3) == ["costly-action", "llm-outside-its-remit"]


def test_completion_of_names_offers_roots_envelopes_and_functions(pack):
    _, text = _guard(pack)
    labels = _complete(pack, text, "action.actor.kind", 0)
    assert {"action", "context", "usage", "autonomy", "cost", "len", "weekday"} <= set(labels)


def test_a_space_offers_enum_values_and_rule_ids_only(pack):
    file, text = _guard(pack)
    bare = text.replace('action.actor.kind == "llm"', "action.actor.kind == ")
    view = analyse(Path(file), {file: bare}, _on_disk(file))
    line, column = _at(bare, "kind == ", 8)
    assert [i.label for i in features.complete(view, file, bare, line, column, " ")] == [
        '"human"',
        '"llm"',
        '"automation"',
    ]
    line, column = _at(text, "deny when", 5)  # a space after `deny`: nothing pops up
    assert features.complete(_on_disk(file), file, text, line, column, " ") == []


def test_no_completion_in_a_comment(pack):
    _, text = _guard(pack)
    assert _complete(pack, text, "agents may do", 3) == []


# ------------------------------------------------------------------ outline


def test_the_outline_lists_each_declaration_of_the_file(pack):
    file, _ = _guard(pack)
    outline = features.symbols(_on_disk(file), file)
    assert [(s.name, s.kind, s.detail) for s in outline] == [
        ("llm-outside-its-remit", "rule", "deny"),
        ("costly-action", "rule", "escalate"),
        ("spend_usd", "usage", "calendar_month"),
        ("a restart by an agent", "test", "test"),
    ]
    assert (outline[0].name_span.line, outline[0].name_span.column) == (2, 6)
    envelopes = str((pack / "policies" / "envelopes.aigre").resolve())
    [autonomy, cost] = features.symbols(_on_disk(envelopes), envelopes)
    assert [(c.name, c.detail) for c in autonomy.children] == [
        ("llm_may", "list of string"),
        ("max_age", "duration"),
    ]
    assert cost.children[0].name == "max_action_usd"


# ------------------------------------------------------------------ diagnostics


def test_unsaved_text_is_compiled_instead_of_the_file_on_disk(pack):
    file, text = _guard(pack)
    assert compile_pack(pack.resolve()).ok
    broken = text.replace('== "llm"', '== "lm"')
    report = compile_pack(pack.resolve(), editing={file: broken})
    assert [d.code for d in report.diagnostics] == ["E202"]
    assert report.diagnostics[0].span is not None and report.diagnostics[0].span.file == file


def test_diagnostics_land_in_every_file_of_the_pack(pack):
    """Renaming an envelope value in one unsaved file breaks the other file's rule."""
    file, _ = _guard(pack)
    envelopes = str((pack / "policies" / "envelopes.aigre").resolve())
    renamed = ENVELOPES.replace("max_action_usd", "max_usd")
    view = analyse(Path(envelopes), {envelopes: renamed})
    by_file = view.by_file(envelopes)
    assert [d.code for d in by_file[file]] == ["E103"]
    assert envelopes not in by_file
    # pack.yaml still overrides the old name: its diagnostic goes to pack.yaml
    assert [d.code for d in by_file[str(pack.resolve() / "pack.yaml")]] == ["E504"]


def test_a_file_outside_a_pack_gets_its_syntax_errors(tmp_path):
    lone = tmp_path / "scratch.aigre"
    lone.write_text("rule r { deny when }\n", encoding="utf-8")
    view = analyse(lone, {})
    assert view.root is None
    assert [d.code for d in view.diagnostics] == ["E001"]


# ------------------------------------------------------------------ the command


def test_lsp_without_its_extra_says_what_to_install(monkeypatch, capsys):
    import sys

    from aigre_policy.cli.main import main

    monkeypatch.delitem(sys.modules, "aigre_policy.lsp.server", raising=False)
    monkeypatch.setitem(sys.modules, "lsprotocol", None)  # as if never installed
    monkeypatch.setitem(sys.modules, "pygls", None)
    assert main(["lsp"]) == 2
    err = capsys.readouterr().err
    assert 'error: the language server needs pygls: pip install "aigre-policy[lsp]"' in err
    assert len(err.strip().splitlines()) == 1


def test_the_command_line_does_not_load_pygls():
    import subprocess
    import sys

    code = (
        "import sys, aigre_policy.cli.main as m; m.build_parser(); "
        "print(sorted(x for x in sys.modules if x.split('.')[0] in ('pygls', 'lsprotocol')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert done.stdout.strip() == "[]"


# ------------------------------------------------------------------ any text


_PIECES = [
    "action", "context", "usage", "cost", "autonomy", "f", ".", " ", "\n", '"', "{", "}",
    "(", ")", "[", "]", "any(", "all(", " in ", "??", "==", "#", "\\", "-", "by ",
    "expect deny by ", "llm-outside-its-remit", "from ", "max_action_usd", "actor", "kind",
    "🚀", "\t", ":", ",",
]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_text_and_no_position_makes_a_feature_fail(pack, data):
    """Whatever the editor holds mid-edit, hover, definition and completion answer."""
    file, _ = _guard(pack)
    view = _on_disk(file)
    text = "".join(data.draw(st.lists(st.sampled_from(_PIECES), max_size=30)))
    lines = text.split("\n")
    line = data.draw(st.integers(0, len(lines)))  # one past the end too
    column = data.draw(st.integers(0, len(lines[line]) + 1 if line < len(lines) else 3))
    features.hover(view, file, text, line, column)
    features.definition(view, file, text, line, column)
    for trigger in (None, " ", ".", '"'):
        features.complete(view, file, text, line, column, trigger)


def test_completion_of_weekdays_on_a_zones_clock(pack):
    _, text = _guard(pack)
    typing = text.replace(
        'action.actor.kind == "llm"', 'weekday_in(context.now, "Europe/Berlin") == "'
    )
    labels = _complete(pack, typing, 'Berlin") == "', 13)
    assert labels[:2] == ["monday", "tuesday"] and len(labels) == 7


def test_completion_of_the_keys_a_keyed_value_lists(pack):
    """Inside ``lookup(ENVELOPE.NAME, "``: the table's keys, each with the value it reads
    (as the pack's overrides leave it)."""
    file, text = _guard(pack)
    keyed = (
        "envelope limits {\n"
        "  by_env: { default: 250, by_environment: { staging: 1000, production: 100 } }\n"
        "}\n"
    )
    saved = text.replace("> cost.max_action_usd", '> lookup(limits.by_env, "staging")') + keyed
    before = analyse(Path(file), {file: saved}, _on_disk(file))
    assert not [d for d in before.diagnostics if d.severity.name == "ERROR"]
    typing = saved.replace('lookup(limits.by_env, "staging")', 'lookup(limits.by_env, "')
    view = analyse(Path(file), {file: typing}, before)
    line, column = _at(typing, 'by_env, "', len('by_env, "'))
    items = features.complete(view, file, typing, line, column)
    assert [(i.label, i.kind, i.detail) for i in items] == [
        ("staging", "key", "by_environment: 1000"),
        ("production", "key", "by_environment: 100"),
    ]
    other = typing.replace('lookup(limits.by_env, "', 'lookup(cost.max_action_usd, "')
    line, column = _at(other, 'max_action_usd, "', len('max_action_usd, "'))
    assert features.complete(view, file, other, line, column) == []  # not keyed: no keys
