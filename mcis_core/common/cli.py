"""Run a stage's main() and turn expected failures into one clear line and exit code 1."""

from __future__ import annotations

import sys
from collections.abc import Callable

from mcis_core.common.errors import EXPECTED_ERRORS


def run_stage(main: Callable[[], None]) -> None:
    """Call `main`; print `error: ...` instead of a traceback for bad input or data."""
    try:
        main()
    except EXPECTED_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
