"""The project's own source files a module runs: its imports, followed transitively.

Two users: the trainings' checkpoint fingerprints (a run resumes only from checkpoints of the
same code, `source_digest`) and the test that dvc.yaml's deps follow the imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

from mcis_core.common.io import files_digest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("mcis_core", "stages")


def module_file(name: str, root: Path = REPO) -> Path | None:
    """The file of project module `name` (a package's __init__.py) under `root`, or None."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, root: Path = REPO) -> set[str]:
    """Names of the project modules `path` imports, with every package on the way."""
    package = list(path.relative_to(root).with_suffix("").parts)[:-1]
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
    return {n for n in with_parents if module_file(n, root) is not None}


def import_closure(entry: Path, root: Path = REPO) -> set[Path]:
    """`entry`, the packages above it (`python -m a.b` runs a/__init__.py first) and every
    project file they import, directly or not."""
    seen: set[Path] = set()
    packages = entry.relative_to(root).parent.parts
    todo = [entry] + [
        root.joinpath(*packages[:i], "__init__.py") for i in range(1, len(packages) + 1)
    ]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(module_file(name, root) for name in imported_modules(path, root))
    return seen


def source_digest(entry: Path, root: Path = REPO) -> str:
    """md5 over the relative paths and contents of `entry`'s import closure."""
    return files_digest(sorted(import_closure(Path(entry).resolve(), root)), root)
