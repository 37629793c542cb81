"""The pool a selection strategy sees: the examples the curator kept, as aligned arrays, and the
decisions in force over them. Plain data only; :mod:`core.select.loading` reads them from the workspace.

A vetoed example, or any example of a vetoed cluster (at the clustering ``k`` the selection uses), is
not in the pool at all, so no strategy can select it. Cluster weights travel with the pool; strategies
that allocate per cluster use them, and :mod:`core.select.run` applies them to the others. The optional
fields hold only what a strategy declares in ``needs``; ``empty`` (which responses are empty or whitespace
only) is always loaded, since :func:`core.select.run.pick` leaves those rows out for most strategies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any, Literal

import numpy as np
import pandas as pd

from core.errors import MissingScores
from core.models.passes import empty_responses

_TOKEN = re.compile(r"\w+|[^\w\s]")

ArrayField = Literal[
    "embeddings",
    "gradients",
    "neighbours",
    "target_gradients",
    "target_embeddings",
    "strata",
    "hidden_states",
    "target_hidden_states",
]
# the ``needs`` entry that makes :func:`core.select.loading.load_pool` fill each optional array field
_NEED_OF: dict[str, str] = {
    "embeddings": "embeddings",
    "gradients": "gradients",
    "neighbours": "graph",
    "target_gradients": "target",
    "target_embeddings": "target_embeddings",
    "strata": "strata",
    "hidden_states": "hidden_states",
    "target_hidden_states": "target_hidden_states",
}


@dataclasses.dataclass(frozen=True)
class Pool:
    """Eligible examples in row order. ``scores`` has the raw signals and ``quality`` the combined quality."""

    row_idx: np.ndarray
    example_ids: list[str]
    cluster_ids: np.ndarray
    cluster_weights: dict[int, float]
    embeddings: np.ndarray | None = None
    scores: pd.DataFrame | None = None
    outputs: list[str] | None = None
    gradients: np.ndarray | None = None
    neighbours: np.ndarray | None = None
    target_gradients: np.ndarray | None = None
    target_groups: np.ndarray | None = None
    target_embeddings: np.ndarray | None = None
    empty: np.ndarray | None = None
    strata: np.ndarray | None = None  # each row's group under a dataset column (``strata`` need)
    hidden_states: np.ndarray | None = None  # the base model's pooled hidden states, unit rows (RDS+)
    target_hidden_states: np.ndarray | None = None  # the same for the target rows (their files: target_groups)

    def __len__(self) -> int:
        return len(self.row_idx)

    def subset(self, positions: np.ndarray) -> Pool:
        """The pool restricted to ``positions`` (kept in the given order)."""
        positions = np.asarray(positions, dtype=int)
        return Pool(
            row_idx=self.row_idx[positions],
            example_ids=[self.example_ids[i] for i in positions],
            cluster_ids=self.cluster_ids[positions],
            cluster_weights=self.cluster_weights,
            embeddings=None if self.embeddings is None else self.embeddings[positions],
            scores=None if self.scores is None else self.scores.iloc[positions].reset_index(drop=True),
            outputs=None if self.outputs is None else [self.outputs[i] for i in positions],
            gradients=None if self.gradients is None else self.gradients[positions],
            neighbours=None if self.neighbours is None else restrict_neighbours(self.neighbours, positions, len(self)),
            target_gradients=self.target_gradients,
            target_groups=self.target_groups,
            target_embeddings=self.target_embeddings,
            empty=None if self.empty is None else self.empty[positions],
            strata=None if self.strata is None else self.strata[positions],
            hidden_states=None if self.hidden_states is None else self.hidden_states[positions],
            target_hidden_states=self.target_hidden_states,
        )

    def array(self, field: ArrayField) -> np.ndarray:
        """An optional array field the strategy declared in its ``needs``; MissingScores naming it when the
        pool was loaded without it (a strategy that does not declare it, or a pool built by hand)."""
        value: np.ndarray | None = getattr(self, field)
        if value is None:
            raise MissingScores(
                f"this strategy needs the pool's {field}, which were not loaded "
                f"(a strategy gets them by declaring {_NEED_OF[field]!r} in its needs)"
            )
        return value

    def score(self, name: str, scorer: str) -> np.ndarray:
        """A raw score (or ``combined`` quality) as floats; an error naming the scorer to run when missing."""
        if self.scores is None or name not in self.scores or self.scores[name].isna().all():
            raise MissingScores(f"this strategy needs the {name!r} score; run the {scorer!r} scorer first")
        return self.scores[name].to_numpy(dtype=float)

    def quality(self, name: str = "combined") -> np.ndarray:
        """Per-example quality in [0, 1] (``combined``) or a named raw score; NaN becomes the lowest value."""
        values = self.score(name, "heuristics" if name == "combined" else name)
        finite = values[np.isfinite(values)]
        return np.where(np.isfinite(values), values, finite.min() if len(finite) else 0.0)

    def empty_responses(self) -> np.ndarray:
        """True where the response is empty or whitespace only: ``empty``, else computed from ``outputs``; all
        False for a pool built by hand with neither (nothing says a response is empty)."""
        if self.empty is not None:
            return np.asarray(self.empty, dtype=bool)
        if self.outputs is not None:
            return empty_responses(self.outputs)
        return np.zeros(len(self), dtype=bool)

    def response_tokens(self) -> np.ndarray:
        """Words and punctuation marks per response: a model-independent length."""
        if self.outputs is None:
            raise MissingScores("this strategy needs the response texts")
        return np.array([len(_TOKEN.findall(text)) for text in self.outputs])

    def fingerprint(self) -> str:
        """Hash of the eligible example ids and their clusters: equal pools give equal hashes."""
        digest = hashlib.sha256()
        for example_id, cluster in zip(self.example_ids, self.cluster_ids.tolist(), strict=True):
            digest.update(f"{example_id}:{cluster}\n".encode())
        return digest.hexdigest()[:16]


def restrict_neighbours(neighbours: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """A neighbour table over ``size`` positions cut down to ``positions``: indices renumbered, neighbours
    outside dropped, each row keeping its order and padded with -1 at the end."""
    renumber = np.full(size + 1, -1, dtype=np.int64)  # the extra last slot maps the padding -1 to -1
    renumber[positions] = np.arange(len(positions))
    mapped = renumber[neighbours[positions]]
    order = np.argsort(mapped < 0, axis=1, kind="stable")  # kept neighbours first, in their order
    return np.take_along_axis(mapped, order, axis=1)


def resolve_budget(budget: float, dataset_rows: int, pool_size: int) -> int:
    """A count, or a fraction (0 < budget < 1) of the dataset's rows; never more than the pool holds."""
    if budget <= 0:
        raise ValueError(f"the budget must be positive, not {budget}")
    count = round(budget * dataset_rows) if budget < 1 else int(budget)
    if budget >= 1 and budget != int(budget):
        raise ValueError(f"a budget of 1 or more is a count of examples; {budget} is not a whole number")
    return min(max(count, 1), pool_size)


@dataclasses.dataclass(frozen=True)
class Decisions:
    """The curator's decisions in force at one moment, over a pool: which positions may be selected or
    trained on (``eligible``), each cluster's weight (a vetoed cluster: 0), and a ``summary`` for records."""

    eligible: np.ndarray
    weights: dict[int, float]
    summary: dict[str, Any]

    @classmethod
    def fixed(cls, pool: Pool) -> Decisions:
        """Everything in the pool eligible, with the pool's weights: a pool that already applied the vetoes."""
        return cls(np.ones(len(pool), dtype=bool), dict(pool.cluster_weights), {})
