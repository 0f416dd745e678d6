"""The project files a module imports, followed transitively (for the dvc.yaml deps test)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("mcis_core", "stages")


def module_file(name: str) -> Path | None:
    """The file of project module `name` (a package's __init__.py), or None."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Names of the project modules `path` imports, with every package on the way."""
    package = list(path.relative_to(REPO).with_suffix("").parts)[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    with_parents = {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 2)}
    return {n for n in with_parents if module_file(n) is not None}


def import_closure(entry: Path) -> set[Path]:
    """`entry`, the packages above it (`python -m a.b` runs a/__init__.py first) and every
    project file they import, directly or not."""
    seen: set[Path] = set()
    packages = entry.relative_to(REPO).parent.parts
    todo = [entry] + [
        REPO.joinpath(*packages[:i], "__init__.py") for i in range(1, len(packages) + 1)
    ]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(module_file(name) for name in imported_modules(path))
    return seen


def is_docstring_only(path: Path) -> bool:
    """A module of nothing but a docstring (a package __init__): it cannot change a result."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)
