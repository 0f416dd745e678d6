"""Worker pools and process launches leave the signal handling of the caller as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from mcis_core.training.process import launch

ROOT = Path(__file__).resolve().parents[1]


def test_ordered_map_lets_its_workers_exit_without_a_signal() -> None:
    # workers that ignore SIGTERM (inherited from the caller) never exit if the pool signals
    # them: the map must end by closing the pool, not terminating it
    script = textwrap.dedent(
        """
        import signal
        from mcis_core.common.parallel import ordered_map
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(list(ordered_map(abs, [-3, 1, -4, 1, -5, 9, -2, 6], 2, desc="t")))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[3, 1, 4, 1, 5, 9, 2, 6]"


def test_launching_processes_keeps_the_callers_signal_handlers() -> None:
    def handler(signum: int, frame: object) -> None:
        raise AssertionError("not to be called")

    # SIGINT's handler depends on how pytest was started (ignored in a background job)
    interrupt = signal.getsignal(signal.SIGINT)
    before = signal.signal(signal.SIGTERM, handler)
    try:
        launch(2, os.getpid)
        assert signal.getsignal(signal.SIGTERM) is handler
        assert signal.getsignal(signal.SIGINT) is interrupt
    finally:
        signal.signal(signal.SIGTERM, before)
