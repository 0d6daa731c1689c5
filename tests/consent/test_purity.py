"""House rule: consent/ is pure — it imports nothing of gateway or adapters, and no I/O
libraries beyond reading the policy file at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_import_rules import imported as imports_of

PACKAGE = Path(__file__).parents[2] / "consent"
FORBIDDEN = {"gateway", "adapters", "httpx", "sqlalchemy", "redis", "socket", "requests", "os"}


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_no_forbidden_imports(path: Path) -> None:
    imported = {name.split(".")[0] for _, name in imports_of(path)}
    assert not imported & FORBIDDEN


def test_only_policy_module_touches_files() -> None:
    for path in PACKAGE.glob("*.py"):
        if path.name != "policy.py":
            text = path.read_text()
            assert "open(" not in text and "read_text" not in text, path.name
