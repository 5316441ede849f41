"""Every command and endpoint is documented; the docs fail the build when one is missing."""

import re
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import typer.main

from canasta.entrypoints.api.app import create_app
from canasta.entrypoints.cli import app

DOCS = Path(__file__).resolve().parents[2] / "docs"


def commands(group: Any, prefix: str = "canasta") -> list[str]:
    """Leaf command paths of typer's (vendored click) command tree."""
    found = []
    for name, command in group.commands.items():
        if getattr(command, "hidden", False):  # an alias, documented with what it aliases
            continue
        if hasattr(command, "commands"):
            found += commands(command, f"{prefix} {name}")
        else:
            found.append(f"{prefix} {name}")
    return found


def test_every_cli_command_has_a_section() -> None:
    text = (DOCS / "cli.md").read_text()
    documented = set(re.findall(r"^### `(canasta [a-z -]+?)(?: [A-Z\[-].*)?`", text, re.M))
    group = typer.main.get_command(app)
    missing = set(commands(group)) - documented
    assert not missing, f"docs/cli.md lacks {sorted(missing)}"


def test_every_endpoint_has_a_section() -> None:
    text = (DOCS / "api.md").read_text()
    spec = create_app(MagicMock()).openapi()
    for path, operations in spec["paths"].items():
        for method in operations:
            assert f"## `{method.upper()} {path}`" in text, f"docs/api.md lacks {method.upper()} {path}"


def test_the_role_table_in_web_md_is_the_matrix() -> None:
    from canasta.service.authz import MATRIX, Permission, Role

    text = (DOCS / "web.md").read_text()
    rows = {
        m[1]: [cell.strip() == "✓" for cell in m[2].split("|")]
        for m in re.finditer(r"^\| `([a-z-]+)` \|(.*)\|$", text, re.M)
    }
    header = re.search(r"^\| permission \| (.*) \|$", text, re.M)
    assert header is not None
    roles = [Role(name.strip()) for name in header[1].split("|")]
    assert set(rows) == {p.value for p in Permission}
    for permission in Permission:
        shown = {role for role, tick in zip(roles, rows[permission.value], strict=True) if tick}
        assert shown == set(MATRIX[permission]), f"docs/web.md shows {permission.value} wrongly"
