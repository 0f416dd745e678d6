"""The repository's params.yaml as typed sections: tests start from these full, valid values
and replace what they need (`dataclasses.replace`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcis_core.common.params import load_section
from mcis_core.sections import SECTIONS

PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"


def section(name: str) -> Any:
    """Section `name` of params.yaml, validated."""
    return load_section(name, SECTIONS[name], PARAMS_FILE)
