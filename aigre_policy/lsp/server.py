"""``aigre-policy lsp``: the Language Server Protocol over standard input and output (pygls).

Diagnostics follow the text: each open or change of a policy file recompiles its
whole pack (after a short pause in typing) with the editor's unsaved text of every
open file, and publishes each file's diagnostics, the other files of the pack and
``pack.yaml`` included, so fixing one file clears what it caused in another. The
compile runs on one worker thread, so hover and completion answer meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from aigre_policy import __version__
from aigre_policy.codes import lookup
from aigre_policy.diagnostics import Diagnostic, Severity, Span
from aigre_policy.lsp import features
from aigre_policy.lsp.project import SUFFIX, PackView, analyse, pack_root

DEBOUNCE_SECONDS = 0.15  # a pause in typing this long recompiles the pack
_DOCS = Path(__file__).resolve().parents[2] / "docs"  # present in a source checkout

_KINDS = {
    "field": lsp.CompletionItemKind.Field,
    "enum": lsp.CompletionItemKind.EnumMember,
    "key": lsp.CompletionItemKind.Value,
    "envelope": lsp.CompletionItemKind.Struct,
    "usage": lsp.CompletionItemKind.Variable,
    "rule": lsp.CompletionItemKind.Reference,
    "function": lsp.CompletionItemKind.Function,
    "root": lsp.CompletionItemKind.Variable,
    "keyword": lsp.CompletionItemKind.Keyword,
}


class Session:
    """The state of one editor connection: the latest view of each pack, pending compiles."""

    def __init__(self, server: LanguageServer):
        self.server = server
        self.views: dict[str, PackView] = {}  # pack root (or lone file) -> its latest view
        self.published: dict[str, set[str]] = {}  # the same key -> files given diagnostics
        self.pending: dict[str, asyncio.Task[None]] = {}
        self.anchors: dict[str, Path] = {}  # the same key -> a policy file of it, to recompile
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aigre-compile")
        here = (_DOCS / "diagnostics.md").is_file()
        self.docs_url: str | None = _DOCS.as_uri() if here else None
        self.shut_down = False  # the client asked to shut down before it said exit

    # ------------------------------------------------------------ documents
    def editing(self) -> dict[str, str]:
        """Every open policy file's text, by absolute path."""
        found: dict[str, str] = {}
        for uri, document in self.server.workspace.text_documents.items():
            path = _path(uri)
            if path is not None and path.suffix == SUFFIX:
                found[str(path)] = document.source
        return found

    def changed(self, uri: str, delay: float) -> None:
        path = _path(uri)
        if path is None or path.suffix != SUFFIX:
            return
        self.schedule(path, delay)

    def changed_on_disk(self, uri: str) -> None:
        """A file changed outside the editor (pack.yaml, a schema, a fixture): every pack
        it sits in is compiled again."""
        path = _path(uri)
        if path is None:
            return
        for key, view in list(self.views.items()):
            if view.root is not None and path.is_relative_to(view.root):
                self.schedule(self.anchors[key], 0)

    def schedule(self, path: Path, delay: float) -> None:
        key = _key(path)
        self.anchors[key] = path
        previous = self.pending.pop(key, None)
        if previous is not None:
            previous.cancel()
        self.pending[key] = asyncio.get_running_loop().create_task(self._refresh(path, delay))

    async def _refresh(self, path: Path, delay: float) -> None:
        await asyncio.sleep(delay)
        key = _key(path)
        try:
            view = await self._analyse(path, self.views.get(key))
        except Exception as exc:  # a fault of the product: say so, keep serving
            self.server.window_log_message(
                lsp.LogMessageParams(
                    type=lsp.MessageType.Error,
                    message=f"aigre-policy could not analyse {path}: {type(exc).__name__}: {exc}",
                )
            )
            return
        finally:
            if self.pending.get(key) is asyncio.current_task():
                del self.pending[key]
        self.views[key] = view
        self.publish(key, view, str(path))

    async def _analyse(self, path: Path, previous: PackView | None = None) -> PackView:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.worker, analyse, path, self.editing(), previous)

    async def view(self, uri: str) -> tuple[PackView, Path] | None:
        """The latest view of the pack the document belongs to (compiled now if none yet)."""
        path = _path(uri)
        if path is None:
            return None
        key = _key(path)
        if key not in self.views:
            self.views[key] = await self._analyse(path)
            self.anchors.setdefault(key, path)
        return self.views[key], path

    async def at(
        self, params: lsp.HoverParams | lsp.DefinitionParams | lsp.CompletionParams
    ) -> tuple[PackView, str, str, int, int] | None:
        """What hover, definition and completion read: the pack's view, the file, its text
        as the editor holds it, and the position in code points."""
        found = await self.view(params.text_document.uri)
        if found is None:
            return None
        view, path = found
        document = self.server.workspace.get_text_document(params.text_document.uri)
        codec = document.position_codec
        where = codec.position_from_client_units(document.lines, params.position)
        return view, str(path), document.source, where.line, where.character

    # ------------------------------------------------------------ diagnostics
    def publish(self, key: str, view: PackView, fallback: str) -> None:
        by_file = view.by_file(fallback)
        files = set(by_file) | set(view.policy_files())
        for file in sorted(files | self.published.get(key, set())):
            found = by_file.get(file, [])
            lines = _lines(view, file, self.server)
            self.server.text_document_publish_diagnostics(
                lsp.PublishDiagnosticsParams(
                    uri=from_fs_path(file) or file,
                    diagnostics=[self.diagnostic(d, lines) for d in found],
                )
            )
        self.published[key] = {f for f, found in by_file.items() if found}

    def diagnostic(self, diagnostic: Diagnostic, lines: Sequence[str]) -> lsp.Diagnostic:
        message = diagnostic.message
        if diagnostic.hint:
            message += f"\nhint: {diagnostic.hint}"
        href = self.doc_link(diagnostic.code)
        return lsp.Diagnostic(
            range=_range(diagnostic.span, lines, self.server),
            message=message,
            severity=lsp.DiagnosticSeverity.Error
            if diagnostic.severity is Severity.ERROR
            else lsp.DiagnosticSeverity.Warning,
            code=diagnostic.code,
            code_description=lsp.CodeDescription(href=href) if href else None,
            source="aigre-policy",
        )

    def doc_link(self, code: str) -> str | None:
        """The documentation of a code: ``docs/diagnostics.md#e301--...`` under the docs URL."""
        if self.docs_url is None:
            return None
        page = lookup(code).doc.removeprefix("docs/")
        return f"{self.docs_url.rstrip('/')}/{page}"


def _key(path: Path) -> str:
    root = pack_root(path.resolve())
    return str(root if root is not None else path.resolve())


def _path(uri: str) -> Path | None:
    """The file a ``file:`` URI names; None for an unsaved buffer (``untitled:``) and such."""
    path = to_fs_path(uri) if uri.startswith("file:") else None
    return Path(path).resolve() if path else None


def _lines(view: PackView, file: str, server: LanguageServer) -> list[str]:
    text = view.sources.get(file)
    if text is None:
        uri = from_fs_path(file)
        document = server.workspace.text_documents.get(uri) if uri else None
        text = document.source if document is not None else ""
    return text.split("\n")


def _range(span: Span | None, lines: Sequence[str], server: LanguageServer) -> lsp.Range:
    if span is None:
        return lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    codec = server.workspace.position_codec
    start = lsp.Position(max(span.line - 1, 0), max(span.column - 1, 0))
    end = lsp.Position(max(span.end_line - 1, 0), max(span.end_column - 1, 0))
    if span.line - 1 >= len(lines):
        return lsp.Range(start, end)
    return lsp.Range(
        codec.position_to_client_units(lines, start), codec.position_to_client_units(lines, end)
    )


def build_server() -> tuple[LanguageServer, Session]:
    """The language server, its features registered; ``start_io()`` runs it."""
    server = LanguageServer("aigre-policy", __version__)
    session = Session(server)

    @server.feature(lsp.SHUTDOWN)
    def shutdown(params: None) -> None:
        session.shut_down = True

    @server.feature(lsp.INITIALIZE)
    def initialize(params: lsp.InitializeParams) -> None:
        options = params.initialization_options
        if isinstance(options, Mapping) and isinstance(options.get("docsUrl"), str):
            session.docs_url = options["docsUrl"]

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: lsp.DidOpenTextDocumentParams) -> None:
        session.changed(params.text_document.uri, 0)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: lsp.DidChangeTextDocumentParams) -> None:
        session.changed(params.text_document.uri, DEBOUNCE_SECONDS)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(params: lsp.DidSaveTextDocumentParams) -> None:
        session.changed(params.text_document.uri, 0)

    @server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def files_changed(params: lsp.DidChangeWatchedFilesParams) -> None:
        for change in params.changes:
            session.changed_on_disk(change.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: lsp.DidCloseTextDocumentParams) -> None:
        session.changed(params.text_document.uri, 0)  # the file on disk counts again

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    async def hover(params: lsp.HoverParams) -> lsp.Hover | None:
        at = await session.at(params)
        answer = features.hover(*at) if at is not None else None
        if at is None or answer is None:
            return None
        word, file, text = answer.word, at[1], at[2]
        span = Span(file, word.line + 1, word.start + 1, word.line + 1, word.end + 1)
        return lsp.Hover(
            contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=answer.markdown),
            range=_range(span, text.split("\n"), server),
        )

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    async def definition(params: lsp.DefinitionParams) -> lsp.Location | None:
        at = await session.at(params)
        target = features.definition(*at) if at is not None else None
        if at is None or target is None:
            return None
        lines = _lines(at[0], target.file, server)
        uri = from_fs_path(target.file) or target.file
        return lsp.Location(uri=uri, range=_range(target.span, lines, server))

    @server.feature(
        lsp.TEXT_DOCUMENT_COMPLETION,
        lsp.CompletionOptions(trigger_characters=[".", '"', " "]),
    )
    async def completion(params: lsp.CompletionParams) -> lsp.CompletionList:
        at = await session.at(params)
        trigger = params.context.trigger_character if params.context else None
        items = features.complete(*at, trigger=trigger) if at is not None else []
        return lsp.CompletionList(is_incomplete=False, items=[_item(i) for i in items])

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    async def outline(params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        found = await session.view(params.text_document.uri)
        if found is None:
            return []
        view, path = found
        lines = _lines(view, str(path), server)
        return [_symbol(s, lines, server) for s in features.symbols(view, str(path))]

    return server, session


_SYMBOL_KINDS = {
    "envelope": lsp.SymbolKind.Struct,
    "value": lsp.SymbolKind.Field,
    "rule": lsp.SymbolKind.Function,
    "usage": lsp.SymbolKind.Variable,
    "test": lsp.SymbolKind.Method,
    "invariant": lsp.SymbolKind.Boolean,
}


def _symbol(
    symbol: features.Symbol, lines: Sequence[str], server: LanguageServer
) -> lsp.DocumentSymbol:
    return lsp.DocumentSymbol(
        name=symbol.name,
        kind=_SYMBOL_KINDS[symbol.kind],
        detail=symbol.detail,
        range=_range(symbol.span, lines, server),
        selection_range=_range(symbol.name_span, lines, server),
        children=[_symbol(child, lines, server) for child in symbol.children],
    )


def _item(item: features.Item) -> lsp.CompletionItem:
    documentation: Any = (
        lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=item.documentation)
        if item.documentation
        else None
    )
    return lsp.CompletionItem(
        label=item.label,
        kind=_KINDS.get(item.kind),
        detail=item.detail,
        documentation=documentation,
        insert_text=item.insert,
    )


def serve() -> int:
    """Run the server on standard input and output until the client says exit (or goes).

    0 when the client shut the server down before ``exit``, 1 otherwise, as the
    protocol asks.
    """
    server, session = build_server()
    server.start_io()
    return 0 if session.shut_down else 1
