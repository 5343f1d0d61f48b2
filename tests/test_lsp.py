"""``aigre-policy lsp`` in a real session: pygls's client starts the command and talks to it
over pipes, as an editor does.

One session (the server takes a moment to start) plays an editing scenario; each test
checks one of its answers. ``tests/test_lsp_features.py`` covers the cases in detail.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import write_pack
from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60  # seconds for any one answer: the machine may be busy

ENVELOPES = """\
envelope cost {
  max_action_usd: 250
}
"""

# "🚀" is two UTF-16 code units: the diagnostic after it must count them as the client does
GUARD = """\
rule llm-outside-its-remit {
  title: "LLM agents stay inside their remit"
  deny when action.actor.kind == "llm" and action.target != "🚀" and action.kind == "deploi"
  because "{action.kind} is outside the remit"
}

rule costly {
  escalate when action.cost.estimated_usd > cost.max_action_usd
}

test "an agent deploys" {
  action from "fixtures/deploy.yaml"
  expect deny by llm-outside-its-remit
}
"""


def _position(text: str, needle: str, into: int = 0) -> lsp.Position:
    """The client's position of ``needle`` (+ ``into`` characters), in UTF-16 units."""
    index = text.index(needle) + into
    line = text.count("\n", 0, index)
    start = text.rfind("\n", 0, index) + 1
    return lsp.Position(line=line, character=len(text[start:index].encode("utf-16-le")) // 2)


async def _scenario(pack: Path) -> dict[str, Any]:
    guard = pack / "policies" / "guard.aigre"
    envelopes = pack / "policies" / "envelopes.aigre"
    uri, envelopes_uri = guard.as_uri(), envelopes.as_uri()
    published: asyncio.Queue[lsp.PublishDiagnosticsParams] = asyncio.Queue()
    client = LanguageClient("aigre-policy-tests", "1")

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
        published.put_nowait(params)

    async def diagnostics_until(done: Any) -> dict[str, list[lsp.Diagnostic]]:
        latest: dict[str, list[lsp.Diagnostic]] = {}
        while not done(latest):
            params = await asyncio.wait_for(published.get(), TIMEOUT)
            latest[params.uri] = list(params.diagnostics)
        return latest

    def at(needle: str, into: int = 0, text: str = GUARD) -> lsp.TextDocumentPositionParams:
        return lsp.TextDocumentPositionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=_position(text, needle, into),
        )

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    await client.start_io(sys.executable, "-m", "aigre_policy.cli.main", "lsp", env=env)
    results: dict[str, Any] = {}
    try:
        started = await asyncio.wait_for(
            client.initialize_async(
                lsp.InitializeParams(
                    capabilities=lsp.ClientCapabilities(),
                    root_uri=pack.as_uri(),
                    initialization_options={"docsUrl": "https://example.org/docs"},
                )
            ),
            TIMEOUT,
        )
        results["capabilities"] = started.capabilities
        client.initialized(lsp.InitializedParams())

        client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(
                text_document=lsp.TextDocumentItem(
                    uri=uri, language_id="aigre", version=1, text=GUARD
                )
            )
        )
        results["opened"] = await diagnostics_until(lambda seen: uri in seen)

        # fix the typo, unsaved: the diagnostic goes away
        fixed = GUARD.replace('"deploi"', '"deploy"')
        client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(version=2, uri=uri),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=fixed)],
            )
        )
        results["fixed"] = await diagnostics_until(lambda seen: uri in seen)

        # rename the envelope value in the other file, unsaved: this file's rule breaks
        client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(
                text_document=lsp.TextDocumentItem(
                    uri=envelopes_uri,
                    language_id="aigre",
                    version=1,
                    text=ENVELOPES.replace("max_", "most_"),
                )
            )
        )
        results["renamed"] = await diagnostics_until(lambda seen: seen.get(uri))

        hover = client.text_document_hover_async
        results["hover_field"] = await hover(lsp.HoverParams(**_fields(at("actor.kind", 1))))
        results["hover_envelope"] = await hover(
            lsp.HoverParams(**_fields(at("cost.max_action_usd", 1)))
        )
        results["hover_rule"] = await hover(lsp.HoverParams(**_fields(at("by llm-outside", 5))))
        definition = client.text_document_definition_async
        results["definition_envelope"] = await definition(
            lsp.DefinitionParams(**_fields(at("cost.max_action_usd", 1)))
        )
        results["definition_rule"] = await definition(
            lsp.DefinitionParams(**_fields(at("by llm-outside", 5)))
        )
        results["definition_fixture"] = await definition(
            lsp.DefinitionParams(**_fields(at("fixtures/deploy", 2)))
        )
        complete = client.text_document_completion_async
        results["complete_field"] = await complete(
            lsp.CompletionParams(**_fields(at("actor.kind", len("actor."))))
        )
        results["complete_enum"] = await complete(
            lsp.CompletionParams(**_fields(at('kind == "llm"', len('kind == "'))))
        )
        results["outline"] = await client.text_document_document_symbol_async(
            lsp.DocumentSymbolParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
        )
        # pack.yaml changes on disk: the editor's file watcher says so, the pack recompiles
        manifest = pack / "pack.yaml"
        manifest.write_text(
            manifest.read_text(encoding="utf-8") + "envelopes: {cost: {most_usd: 1}}\n",
            encoding="utf-8",
        )
        client.workspace_did_change_watched_files(
            lsp.DidChangeWatchedFilesParams(
                changes=[lsp.FileEvent(uri=manifest.as_uri(), type=lsp.FileChangeType.Changed)]
            )
        )
        results["manifest"] = await diagnostics_until(lambda seen: seen.get(manifest.as_uri()))
        await asyncio.wait_for(client.shutdown_async(None), TIMEOUT)
        results["shutdown"] = True
        client.exit(None)
    finally:
        server = getattr(client, "_server", None)  # pygls keeps the process it started here
        if server is not None and server.returncode is None and "shutdown" not in results:
            server.kill()  # the scenario failed midway: no exit is coming
        await client.stop()
    results["returncode"] = server.returncode if server is not None else None
    return results


def _fields(params: lsp.TextDocumentPositionParams) -> dict[str, Any]:
    return {"text_document": params.text_document, "position": params.position}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pack = write_pack(
        tmp_path_factory.mktemp("lsp") / "guard",
        {"envelopes.aigre": ENVELOPES, "guard.aigre": GUARD},
        files={"fixtures/deploy.yaml": "action: {kind: deploy}\n"},
    ).resolve()
    results = asyncio.run(_scenario(pack))
    results["pack"] = pack
    return results


def _markdown(hover: lsp.Hover | None) -> str:
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    return hover.contents.value


def test_the_server_exits_0_after_shutdown_and_exit(session):
    assert session["returncode"] == 0


def test_the_server_announces_hover_definition_and_completion(session):
    capabilities = session["capabilities"]
    assert capabilities.hover_provider and capabilities.definition_provider
    assert "." in capabilities.completion_provider.trigger_characters


def test_diagnostics_on_open_carry_code_range_and_documentation(session):
    uri = (session["pack"] / "policies" / "guard.aigre").as_uri()
    [found] = session["opened"][uri]
    assert found.code == "E202" and found.severity == lsp.DiagnosticSeverity.Error
    assert found.source == "aigre-policy"
    assert "did you mean 'deploy'?" in found.message  # the hint comes along
    assert found.code_description is not None
    assert found.code_description.href.startswith("https://example.org/docs/diagnostics.md#e202-")
    # the span of "deploi" in UTF-16 units: after the two-unit "🚀"
    start = _position(GUARD, '"deploi"')
    assert found.range == lsp.Range(
        start=start, end=lsp.Position(line=start.line, character=start.character + 8)
    )


def test_diagnostics_clear_when_the_text_is_fixed(session):
    uri = (session["pack"] / "policies" / "guard.aigre").as_uri()
    assert session["fixed"][uri] == []


def test_a_change_in_one_file_reports_in_the_other(session):
    uri = (session["pack"] / "policies" / "guard.aigre").as_uri()
    envelopes_uri = (session["pack"] / "policies" / "envelopes.aigre").as_uri()
    assert [d.code for d in session["renamed"][uri]] == ["E103"]
    assert session["renamed"].get(envelopes_uri, []) == []


def test_the_outline_names_the_rules_and_the_test(session):
    outline = session["outline"]
    assert [(s.name, s.kind) for s in outline] == [
        ("llm-outside-its-remit", lsp.SymbolKind.Function),
        ("costly", lsp.SymbolKind.Function),
        ("an agent deploys", lsp.SymbolKind.Method),
    ]
    assert outline[0].selection_range == lsp.Range(
        start=lsp.Position(line=0, character=5), end=lsp.Position(line=0, character=26)
    )


def test_a_change_on_disk_to_pack_yaml_recompiles_the_pack(session):
    [found] = session["manifest"][(session["pack"] / "pack.yaml").as_uri()]
    assert found.code == "E504" and "most_usd" in found.message


def test_hover_on_a_field_gives_type_and_description(session):
    shown = _markdown(session["hover_field"])
    assert "**action.actor**: `object Actor`" in shown
    assert "Who claims to propose it" in shown
    assert session["hover_field"].range == lsp.Range(
        start=_position(GUARD, "actor.kind"), end=_position(GUARD, ".kind")
    )


def test_hover_on_an_envelope_follows_the_unsaved_text(session):
    # the open envelopes.aigre renamed the value: hover follows the editor, not the disk
    shown = _markdown(session["hover_envelope"])
    assert "**envelope** `cost`" in shown
    assert "| `most_action_usd` | integer | `250` |" in shown


def test_hover_on_a_rule_named_by_a_test(session):
    shown = _markdown(session["hover_rule"])
    assert "**rule** `llm-outside-its-remit`" in shown and "LLM agents stay" in shown


def test_definition_of_an_envelope_reference(session):
    location = session["definition_envelope"]
    assert location.uri == (session["pack"] / "policies" / "envelopes.aigre").as_uri()
    assert location.range.start == lsp.Position(line=0, character=0)


def test_definition_of_a_rule_and_a_fixture(session):
    rule = session["definition_rule"]
    assert rule.uri == (session["pack"] / "policies" / "guard.aigre").as_uri()
    assert rule.range == lsp.Range(
        start=lsp.Position(line=0, character=5), end=lsp.Position(line=0, character=26)
    )
    fixture = session["definition_fixture"]
    assert fixture.uri == (session["pack"] / "fixtures" / "deploy.yaml").as_uri()


def test_completion_of_field_paths_and_enum_values(session):
    fields = [item.label for item in session["complete_field"].items]
    assert fields == ["kind", "id", "model", "trust", "on_behalf_of"]
    assert session["complete_field"].items[0].kind == lsp.CompletionItemKind.Field
    values = [item.label for item in session["complete_enum"].items]
    assert values == ["human", "llm", "automation"]


def test_the_editor_compiles_to_the_checked_pack_and_misses_no_diagnostic(tmp_path) -> None:
    """The server stops before building an evaluator: for every pack in the repository,
    and one with warnings and errors, that gives the diagnostics a full compile gives."""
    from aigre_policy.compiler import compile_pack

    root = Path(__file__).resolve().parent.parent
    flawed = tmp_path / "flawed"
    (flawed / "policies").mkdir(parents=True)
    (flawed / "pack.yaml").write_text("name: flawed\nversion: 1.0.0\ndefault: allow\n")
    (flawed / "policies" / "a.aigre").write_text(
        'rule dead {\n  deny when action.kind == "deploy" and action.kind == "rollback"\n}\n'
        "rule typo {\n  deny when action.kind == 3\n}\n"
    )
    packs = [*sorted(p.parent for p in (root / "policy_packs").glob("*/pack.yaml")), flawed]
    for pack in packs:
        full = compile_pack(pack)
        checked = compile_pack(pack, engine=None)
        assert checked.diagnostics == full.diagnostics, pack
        assert (checked.checked is None) == (full.compiled is None), pack
    assert compile_pack(flawed).diagnostics  # the flawed pack has something to say
