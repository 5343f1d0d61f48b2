"""A new pack from templates: ``pack.yaml``, one policy file with its tests, a README.

The templates live beside this module (they ship in the wheel) and are filled
with ``string.Template``. The result passes ``aigre-policy ci`` as it is, which
a test keeps true.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from string import Template

NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
MAX_NAME = 64
FILES = {
    "pack.yaml": "pack.yaml.tmpl",
    "policies/{name}.aigre": "policy.aigre.tmpl",
    "README.md": "README.md.tmpl",
}


class ScaffoldError(Exception):
    """A name that is not a pack name, or a directory that is already in use."""


def check_name(name: str) -> None:
    if len(name) > MAX_NAME or not NAME.fullmatch(name):
        raise ScaffoldError(
            f"{name!r} is not a pack name: use lowercase letters and digits in words joined "
            f"by '-', starting with a letter, at most {MAX_NAME} characters (e.g. deploy-guard)"
        )


def scaffold(name: str, parent: Path | None = None) -> Path:
    """Create the pack ``name`` under ``parent`` (the current directory by default)."""
    check_name(name)
    root = (parent or Path.cwd()) / name
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ScaffoldError(f"{root} already exists and is not an empty directory")
    templates = resources.files(__name__)
    values = {"name": name, "policy": name}
    (root / "policies").mkdir(parents=True, exist_ok=True)
    for target, template in FILES.items():
        text = Template(templates.joinpath(template).read_text(encoding="utf-8"))
        (root / target.format(name=name)).write_text(text.substitute(values), encoding="utf-8")
    return root
