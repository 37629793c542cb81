"""The ``sweep`` job: fit more k values, or make a k the active clustering, in a background worker.

At a million rows one k-means fit takes minutes, so the Diagnostics page's "Use this k" and "Run sweep"
launch a :class:`SweepJob` instead of fitting in the page's script thread. ``ks`` are fitted and stored
(:func:`core.prepare.add_k_values`); then ``choose``, when given, becomes the active k
(:func:`core.prepare.choose_k`, which fits it too when it was not swept). Nothing is stored until a sweep
ends, so a cancelled or killed job leaves the stored sweep as it was, and a resume fits again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

from core import jobs
from core.progress import Progress


@dataclasses.dataclass(frozen=True)
class SweepJob:
    """Fit ``ks`` on ``dataset`` (stored with the sweep), then make ``choose`` its active k when given."""

    kind: ClassVar[str] = "sweep"
    dataset: str
    ks: tuple[int, ...] = ()
    choose: int | None = None

    def validate(self, workspace: Path) -> None:

        dataset = jobs.ready_dataset(workspace, self.dataset)
        if not self.ks and self.choose is None:
            raise jobs.InvalidJob("ks", "give k values to sweep or a k to choose")
        for field, values in (("ks", self.ks), ("choose", () if self.choose is None else (self.choose,))):
            bad = [k for k in values if not isinstance(k, int) or not 2 <= k <= dataset.n_rows]
            if bad:
                raise jobs.InvalidJob(
                    field, f"k must be a whole number from 2 to {dataset.n_rows} (the rows), not {bad}"
                )

    def to_params(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "ks": list(self.ks), "choose": self.choose}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> SweepJob:
        choose = params.get("choose")
        return cls(
            dataset=str(params["dataset"]),
            ks=tuple(int(k) for k in params.get("ks") or ()),
            choose=None if choose is None else int(choose),
        )


def execute(workspace: Path, spec: SweepJob, progress: Progress, job_dir: Path) -> dict[str, Any]:
    """Job kind ``sweep``: the stored sweep changes only when a sweep ends, so a rerun starts it again."""
    from core.prepare import add_k_values, choose_k
    from core.storage import datasets as ds
    from core.storage.database import Store

    store = Store(workspace)
    if spec.ks:
        add_k_values(store, ds.get_dataset(store, spec.dataset), sorted(set(spec.ks)), progress)
    if spec.choose is not None:
        choose_k(store, ds.get_dataset(store, spec.dataset), spec.choose, progress)
    dataset = ds.get_dataset(store, spec.dataset)
    return {
        "ks": sorted(set(spec.ks)),
        "active_k": dataset.active_k,
        "best_k": dataset.best_k,
        "knee_k": dataset.knee_k,
    }
