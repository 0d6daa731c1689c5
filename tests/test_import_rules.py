"""The import directions of ``docs/architecture.md`` ("Packages and import directions"), as tests.

Every module of the four packages is parsed with :mod:`ast` (nothing is imported, so a rule
holds whether or not the code runs), and every ``import`` / ``from ... import`` in it —
at the top, inside functions, under ``TYPE_CHECKING`` — is checked:

* ``consent`` imports nothing of ours but ``consent`` (pure decisions);
* ``adapters`` imports nothing of ours but ``adapters`` (only adapters know source formats,
  and they know nothing of the gateway);
* ``simulators`` imports ``simulators`` and, of ours, only ``adapters.nhs_number`` and
  ``adapters.base`` (they stand in for vendor systems).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("adapters", "consent", "gateway", "simulators", "vocabulary", "bench", "tests")

#: Package → the modules of ours (besides itself) it may import; a name allows its submodules.
ALLOWED: dict[str, frozenset[str]] = {
    "vocabulary": frozenset(),  # the leaf: nothing of ours
    "consent": frozenset({"vocabulary"}),
    "adapters": frozenset({"vocabulary"}),
    "simulators": frozenset({"vocabulary", "adapters.nhs_number", "adapters.base"}),
}


def modules(package: str, root: Path = ROOT) -> list[Path]:
    return sorted((root / package).rglob("*.py"))


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in ``path``, relative imports made absolute; a
    ``from package import name`` yields ``package.name`` (the name may be a submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path, root).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here[: len(here) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}" if alias.name != "*" else base


def is_within(name: str, allowed: str) -> bool:
    return name == allowed or name.startswith(allowed + ".")


def breaches(package: str, root: Path = ROOT) -> list[str]:
    """``file:line imports module`` for every import of ours the package may not make."""
    found: list[str] = []
    for path in modules(package, root):
        for line, name in imported(path, root):
            top = name.split(".", 1)[0]
            if top not in OURS or top == package:
                continue
            # A bare ``import adapters`` is not within ``adapters.nhs_number``: refused.
            if any(is_within(name, allowed) for allowed in ALLOWED[package]):
                continue
            found.append(f"{path.relative_to(root).as_posix()}:{line} imports {name}")
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_the_architecture_allows(package: str) -> None:
    assert modules(package), f"no modules found for {package}"
    assert breaches(package) == []


def test_consent_never_imports_gateway_adapters_or_simulators() -> None:
    names = {name for path in modules("consent") for _, name in imported(path)}
    assert not {n for n in names if n.split(".")[0] in ("gateway", "adapters", "simulators")}


def test_adapters_never_import_gateway_consent_or_simulators() -> None:
    names = {name for path in modules("adapters") for _, name in imported(path)}
    assert not {n for n in names if n.split(".")[0] in ("gateway", "consent", "simulators")}


def test_simulators_never_import_gateway_or_consent_and_only_two_adapters_modules() -> None:
    names = {name for path in modules("simulators") for _, name in imported(path)}
    assert not {n for n in names if n.split(".")[0] in ("gateway", "consent")}
    used = {n for n in names if n.split(".")[0] == "adapters"}
    assert used, "the simulators use adapters.nhs_number: the checker must see that"
    allowed = ("adapters.nhs_number", "adapters.base")
    assert {n for n in used if not any(is_within(n, a) for a in allowed)} == set()


#: Modules below the HTTP routes: the dependencies a route declares, the FHIR helpers, the
#: record and the policy. They serve the routes and so must never import them.
BELOW_ROUTES = ("gateway/deps.py", "gateway/fhir", "gateway/records", "gateway/policy")


def test_dependencies_fhir_records_and_policy_never_import_the_routes() -> None:
    paths = [p for below in BELOW_ROUTES for p in ([ROOT / below] if below.endswith(".py")
             else modules(below))]  # fmt: skip
    assert len(paths) > len(BELOW_ROUTES), "the checker must see the packages' modules"
    found = [
        f"{path.relative_to(ROOT).as_posix()}:{line} imports {name}"
        for path in paths
        for line, name in imported(path)
        if is_within(name, "gateway.routes")
    ]
    assert found == []


# --- the checker itself must be able to fail ------------------------------------------------


def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / "simulators"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    source = (
        "import gateway.app\n"
        "from adapters import ukcore, nhs_number\n"
        "from adapters.base import SourceConfig\n"
        "from .. import _vocab\n"
        "def late() -> None:\n"
        "    from consent import decide\n"
    )
    (pkg / "sub" / "mod.py").write_text(source)
    assert breaches("simulators", tmp_path) == [
        "simulators/sub/mod.py:1 imports gateway.app",
        "simulators/sub/mod.py:2 imports adapters.ukcore",
        "simulators/sub/mod.py:6 imports consent.decide",
    ]
