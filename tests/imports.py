"""What the dvc.yaml deps test needs besides `mcis_core.common.code`'s import closure."""

from __future__ import annotations

import ast
from pathlib import Path


def is_docstring_only(path: Path) -> bool:
    """A module of nothing but a docstring (a package __init__): it cannot change a result."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)
