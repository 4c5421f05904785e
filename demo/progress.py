"""What the demo shows while it runs: timed stage lines on the console, the services' logs and
the process's stdout in files."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import click

#: A stage that runs longer than this says so, with its elapsed time, every this many seconds.
HEARTBEAT_S = 15.0


class Progress:
    """Prints stage timings (``[  12.3 s] stage ... done in 2.1 s``) and keeps them; a long
    stage prints ``still <stage> (30 s)`` every :data:`HEARTBEAT_S` seconds while it runs."""

    def __init__(self, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.heartbeat_s = heartbeat_s
        self.start = time.perf_counter()
        self.stages: list[tuple[str, float]] = []
        #: Where progress goes (the console, also while fd 1 is redirected to the log).
        self.out: IO[str] | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def say(self, message: str) -> None:
        click.echo(f"[{self.elapsed():7.1f} s] {message}", file=self.out)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.say(f"{name} ...")
        t0 = time.perf_counter()
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.heartbeat_s):
                self.say(f"    still {name} ({time.perf_counter() - t0:.0f} s)")

        ticker = threading.Thread(target=beat, name="progress-heartbeat", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()
        seconds = time.perf_counter() - t0
        self.stages.append((name, seconds))
        self.say(f"{name}: done in {seconds:.1f} s")


@contextmanager
def console_to_log(path: Path, progress: Progress) -> Iterator[None]:
    """Point file descriptor 1 at ``path`` while the services run; progress keeps the console.

    Ape prints a call trace to the process's stdout for every reverted transaction (the
    dishonest node's rejected defences make many); those belong in the log, not the console.
    Does nothing when stdout has no file descriptor (e.g. under click's test runner).
    """
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    console = os.fdopen(os.dup(fd), "w", buffering=1)
    with path.open("a") as sink:
        os.dup2(sink.fileno(), fd)
        progress.out = console
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, fd)
            os.close(saved)
            progress.out = None
            console.close()


@contextmanager
def service_logs(path: Path) -> Iterator[None]:
    """Send the services' logs to ``path``; keep the console for the demo's own progress.

    With ``spotcheck -v demo`` the console keeps its handlers too.
    """
    from ape.logging import logger as ape_logger

    from spotcheck.kit.quiet import demote_chatter

    demote_chatter()  # "Using cached key" per receipt, ezkl's fidelity table: DEBUG
    root = logging.getLogger()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s")
    )
    mute = root.level >= logging.WARNING or root.level == logging.NOTSET
    saved = [(h, h.level) for h in root.handlers]
    old_root, old_ape = root.level, ape_logger.level
    if mute:
        for h in root.handlers:
            h.setLevel(logging.CRITICAL + 1)
        ape_logger.set_level("ERROR")
    root.addHandler(handler)
    root.setLevel(min(logging.INFO, old_root) if old_root else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        for h, level in saved:
            h.setLevel(level)
        root.setLevel(old_root)
        ape_logger.set_level(old_ape)
