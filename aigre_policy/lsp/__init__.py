"""The language server behind ``aigre-policy lsp``: what an editor shows while a pack is edited.

``project`` compiles the pack a file belongs to (unsaved editor text included) and
indexes its declarations and input schema; ``cursor`` reads the text around a
position; ``features`` answers hover, definition and completion from those two;
``server`` speaks the Language Server Protocol with pygls. Only ``server`` imports
pygls, so the rest is tested without a client.
"""
