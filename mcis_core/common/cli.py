"""Run a stage's main() and turn expected failures into one clear line and exit code 1."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from mcis_core.common.errors import EXPECTED_ERRORS

# set by a launcher of several processes: each leaves its error there, the launcher prints one
ERRORS_DIR_ENV = "MCIS_STAGE_ERRORS"


def run_stage(main: Callable[[], None]) -> None:
    """Call `main`; print `error: ...` instead of a traceback for bad input or data (in a run
    of several processes, leave it to the launcher, which prints one)."""
    try:
        main()
    except EXPECTED_ERRORS as err:
        errors_dir = os.environ.get(ERRORS_DIR_ENV)
        if errors_dir:
            rank = os.environ.get("RANK", "0")
            Path(errors_dir, f"rank_{int(rank):05d}.txt").write_text(str(err))
        else:
            print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
