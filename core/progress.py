"""Progress reporting and cancellation for long work, independent of who shows it.

The CLI shows a tqdm bar, a background job writes its status file, a page shows a Streamlit bar; the
core calls the same :class:`Progress` methods and checks for cancellation between batches.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

UNITS = {"embed": "text", "k sweep": "k", "ingest": "B", "ingest rows": "row"}
BYTE_STAGES = {stage for stage, unit in UNITS.items() if unit == "B"}  # shown scaled: 12.3MB/1.02GB


def count_text(stage: str, done: int, total: int) -> str:
    """How far a stage is, for a label: ``3/10``, or for a stage counted in bytes ``12.3/970.0 MB``."""
    if stage not in BYTE_STAGES:
        return f"{done}/{total}"
    for power, unit in ((3, "GB"), (2, "MB"), (1, "kB")):
        if total >= 1000**power:
            return f"{done / 1000**power:.1f}/{total / 1000**power:.1f} {unit}"
    return f"{done}/{total} B"


class Cancelled(Exception):
    """The user asked to stop; work done so far that was committed stays committed."""


class Progress:
    """Stage-wise progress. Subclasses override :meth:`update`; ``should_stop`` is polled between batches."""

    def __init__(self, should_stop: Callable[[], bool] | None = None):
        self.stage = ""
        self.done = 0
        self.total = 0
        self._should_stop = should_stop or (lambda: False)

    def start(self, stage: str, total: int) -> None:
        """Begin a stage of ``total`` units."""
        self.check()
        self.stage, self.done, self.total = stage, 0, total
        self.update()

    def advance(self, n: int = 1) -> None:
        """Mark ``n`` more units done, then stop if cancellation was asked for."""
        self.done += n
        self.update()
        self.check()

    def message(self, text: str) -> None:
        """A free-text note for the log (default: ignored)."""

    def note(self, text: str) -> None:
        """Running figures of the current stage (a rate, counts) that replace the previous ones: the CLI shows
        them beside its bar, a job as its message (default: :meth:`message`)."""
        self.message(text)

    def stop_requested(self) -> bool:
        """Whether the user asked to stop (for loops that save their state before raising)."""
        return self._should_stop()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the user asked to stop."""
        if self._should_stop():
            raise Cancelled(f"cancelled during {self.stage or 'start-up'}")

    def update(self) -> None:
        """Show the current state (default: nothing)."""


@contextlib.contextmanager
def interruptible(progress: Progress, poll_seconds: float = 0.5) -> Iterator[None]:
    """Let a cancel stop a block that never checks for one (a selection strategy's own loop, one library call).

    A watcher thread polls ``progress.stop_requested()`` and, when a stop is asked, interrupts the main thread
    (as Ctrl-C would), which raises :class:`Cancelled` here. The interrupt lands between Python bytecodes, so a
    long single call into C (one faiss search) ends first. Only for work that stores nothing as it goes (a
    preview), and only in the main thread with Python's own SIGINT handler; elsewhere the block simply runs.
    """
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    finished, fired = threading.Event(), threading.Event()

    def watch() -> None:
        while not finished.wait(poll_seconds):
            if progress.stop_requested():
                fired.set()
                _thread.interrupt_main()
                return

    watcher = threading.Thread(target=watch, name="cancel-watcher", daemon=True)
    watcher.start()
    try:
        try:
            yield
        finally:  # the watcher has stopped before we leave, so no interrupt can land after the block
            finished.set()
            watcher.join()
    except KeyboardInterrupt:
        if fired.is_set():
            raise Cancelled(f"cancelled during {progress.stage or 'start-up'}") from None
        raise


class TqdmProgress(Progress):
    """A tqdm bar per stage, for the CLI (written to stderr)."""

    def __init__(self, should_stop: Callable[[], bool] | None = None):
        super().__init__(should_stop)
        self._bar = None

    def start(self, stage: str, total: int) -> None:
        from tqdm import tqdm

        self.close()
        unit, scale = UNITS.get(stage, "step"), stage in BYTE_STAGES
        self._bar = tqdm(total=total, desc=stage, unit=unit, unit_scale=scale, dynamic_ncols=True, delay=0.5)
        super().start(stage, total)

    def update(self) -> None:
        if self._bar is not None and self.done > self._bar.n:
            self._bar.update(self.done - self._bar.n)  # update() honours tqdm's delay and refresh rate

    def message(self, text: str) -> None:
        from tqdm import tqdm

        tqdm.write(text)

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)  # drawn at the bar's next refresh

    def close(self, discard: bool = False) -> None:
        """Close the current bar; ``discard`` erases it (after an error, so the error line stands alone)."""
        if self._bar is not None:
            if discard:
                shown = self._bar.format_dict["elapsed"] >= self._bar.delay
                self._bar.disable = True
                if shown:  # end the bar's line so the error starts on its own
                    import sys

                    sys.stderr.write("\n")
            self._bar.close()
            self._bar = None
