"""Progress reporting and cancellation for long work, independent of who shows it.

The CLI shows a tqdm bar, a background job writes its status file, a page shows a Streamlit bar; the
core calls the same :class:`Progress` methods and checks for cancellation between batches.
"""

from __future__ import annotations

from collections.abc import Callable

UNITS = {"embed": "text", "k sweep": "k", "ingest": "file"}


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

    def check(self) -> None:
        """Raise :class:`Cancelled` if the user asked to stop."""
        if self._should_stop():
            raise Cancelled(f"cancelled during {self.stage or 'start-up'}")

    def update(self) -> None:
        """Show the current state (default: nothing)."""


class TqdmProgress(Progress):
    """A tqdm bar per stage, for the CLI (written to stderr)."""

    def __init__(self, should_stop: Callable[[], bool] | None = None):
        super().__init__(should_stop)
        self._bar = None

    def start(self, stage: str, total: int) -> None:
        from tqdm import tqdm

        self.close()
        self._bar = tqdm(total=total, desc=stage, unit=UNITS.get(stage, "step"), dynamic_ncols=True)
        super().start(stage, total)

    def update(self) -> None:
        if self._bar is not None:
            self._bar.n = self.done
            self._bar.refresh()

    def message(self, text: str) -> None:
        from tqdm import tqdm

        tqdm.write(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
