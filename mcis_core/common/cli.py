"""Run a stage's main() and turn expected failures into one clear line and exit code 1."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from mcis_core.common.errors import EXPECTED_ERRORS


def run_stage(main: Callable[[], None]) -> None:
    """Call `main`; print `error: ...` instead of a traceback for bad input or data (in a run
    of several processes, rank 0 alone prints it)."""
    try:
        main()
    except EXPECTED_ERRORS as err:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
