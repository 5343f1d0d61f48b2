"""``aigre-policy init``: a new pack that passes ``aigre-policy ci`` as it is."""

from __future__ import annotations

import pytest

from aigre_policy.cli.main import main
from aigre_policy.scaffold import ScaffoldError, check_name


def test_a_new_pack_passes_ci_at_once(tmp_path, capsys, plain_console) -> None:
    assert main(["init", "deploy-guard", "--dir", str(tmp_path)]) == 0
    root = tmp_path / "deploy-guard"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "README.md",
        "pack.yaml",
        "policies/deploy-guard.aigre",
    ]
    assert "name: deploy-guard\n" in (root / "pack.yaml").read_text()
    capsys.readouterr()
    assert main(["ci", str(root)]) == 0
    assert "1 of 1 pack passed" in capsys.readouterr().out


def test_the_new_pack_tests_both_sides_of_its_line(tmp_path, capsys, plain_console) -> None:
    main(["init", "guard", "--dir", str(tmp_path)])
    text = (tmp_path / "guard" / "policies" / "guard.aigre").read_text()
    assert "expect allow" in text
    assert "expect require_approval by costly-action" in text


def test_init_refuses_a_directory_that_is_not_empty(tmp_path, capsys, plain_console) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert main(["init", "taken", "--dir", str(tmp_path)]) == 2
    assert "already exists and is not an empty directory" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]


def test_init_fills_an_empty_directory(tmp_path, plain_console) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["init", "empty", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "empty" / "pack.yaml").is_file()


@pytest.mark.parametrize(
    "name", ["Guard", "1guard", "guard_", "-guard", "guard--x", "a/b", "", "x" * 65]
)
def test_init_refuses_a_name_that_is_not_a_pack_name(name, tmp_path, capsys, plain_console):
    assert main(["init", "--dir", str(tmp_path), "--", name]) == 2
    assert "is not a pack name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_names_like_rule_ids_are_accepted() -> None:
    for name in ("guard", "deploy-guard", "team2-limits"):
        check_name(name)
    with pytest.raises(ScaffoldError):
        check_name("deploy guard")
