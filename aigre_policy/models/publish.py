"""Publish the JSON Schemas of the proposed action, its context and the verdict.

Run ``python -m aigre_policy.models.publish [DIR]`` to regenerate the committed
schemas (default ``docs/schemas``) after changing a model.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from aigre_policy.models.action import Context, ProposedAction, json_schema_of
from aigre_policy.models.verdict import VerdictDocument

SCHEMA_BASE_URI = "https://aigre.dev/schemas/"
DEFAULT_DIR = Path("docs/schemas")

_PUBLISHED: dict[str, tuple[type[BaseModel], str]] = {
    "proposed-action.schema.json": (ProposedAction, "aigre proposed action"),
    "context.schema.json": (Context, "aigre action context"),
    "verdict.schema.json": (VerdictDocument, "aigre verdict"),
}


def published_schemas() -> dict[str, dict[str, Any]]:
    """Every published schema, keyed by its file name."""
    schemas: dict[str, dict[str, Any]] = {}
    for file_name, (model, title) in _PUBLISHED.items():
        schema = json_schema_of(model)
        schema["$id"] = SCHEMA_BASE_URI + file_name
        schema["title"] = title
        schemas[file_name] = schema
    return schemas


def render(schema: dict[str, Any]) -> str:
    """The exact text a schema is committed as."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write every published schema into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, schema in published_schemas().items():
        path = directory / file_name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: regenerate the published schemas."""
    parser = argparse.ArgumentParser(
        prog="python -m aigre_policy.models.publish",
        description="Write the published JSON Schemas of the aigre data models.",
    )
    parser.add_argument(
        "directory",
        nargs="?",
        type=Path,
        default=DEFAULT_DIR,
        help=f"where to write the schemas (default: {DEFAULT_DIR})",
    )
    args = parser.parse_args(argv)
    for path in write_schemas(args.directory):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
