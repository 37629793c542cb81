"""Gradient-based targeted selection on arrays: G2IS's core knowledge and gradient walk, its "w/o graph"
ablation, LESS, and the Sentence-BERT kNN baseline (docs/algorithms.md 4.4, 4.5, 4.9 and section 5).

The walk follows the released ``GraphWalk.graph_walk``: per principal component k_c of the target
gradients, an anchor, then repeatedly the first neighbour (in descending-similarity order) of the last
pick that conflicts with no pick of this component (C1) and keeps the running sum aligned with k_c
(C2), else the first such sample in descending cosine with k_c, else the component stops. Its
unfilled budget is not reallocated unless ``refill`` asks for it, so the output may be shorter than
the budget.

All features are L2-normalised rows (float16 or float32, computed in float32): dot products are cosines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import numpy as np

from core.select.allocation import largest_remainder

ProgressFn = Callable[[int], None]
Refill = Literal["none", "next_component", "less_topk"]

_TINY = 1e-12  # a squared norm below this is a zero vector (its cosine with anything is taken as 0)
_FIRST_BLOCK = 512  # fallback scan: candidates in the first block, growing 4x per block


@dataclasses.dataclass(frozen=True)
class WalkResult:
    """What a walk picked and how.

    picks : (p,) row indices, the S_c concatenated in component order, then any refill picks.
    component : (p,) the component each pick belongs to; -1 for refill picks.
    via : (p,) "anchor" | "neighbour" | "fallback" | "refill" ("ranked" in :func:`walk_without_graph`).
    budgets : (c,) per-component budgets B_c (largest remainder of the budget by the weights).
    shortfall : budget - p (> 0 when components stopped early and nothing refilled them).
    stop_reasons : per component: "filled", "no feasible sample", "pool exhausted" or "no budget".
    """

    picks: np.ndarray
    component: np.ndarray
    via: np.ndarray
    budgets: np.ndarray
    shortfall: int
    stop_reasons: tuple[str, ...]


def core_knowledge(
    target_features: np.ndarray,
    *,
    ratio: float = 0.5,
    mode: Literal["variance", "count"] = "variance",
    center: bool = True,
    orient: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The target set's principal directions k_1..k_c and their weights (docs/algorithms.md 4.4).

    Parameters
    ----------
    target_features : (n_val, D) target (validation) gradient features.
    ratio : the code's ``val_k``.
    mode : ``variance``: the smallest number of components whose cumulative explained-variance ratio
        exceeds ``ratio`` (strictly, as scikit-learn's ``PCA(n_components=ratio)``), ratio in (0, 1).
        ``count``: max(1, floor(D * ratio)) components. The code multiplies the *feature dimension* D,
        not n_val, and scikit-learn would then raise; we cap the count at min(n_val, D) instead (with
        centring, components past n_val - 1 explain nothing and get weight 0, hence no budget).
    center : True is scikit-learn's PCA (what the code runs), which removes the mean target gradient,
        the very direction LESS uses; False is the uncentred SVD ablation.
    orient : flip each component whose dot product with the mean target feature is negative. PCA signs
        are arbitrary and the walk ranks anchors by *signed* cosine, so an unflipped component can
        anchor on gradients opposite to the target's. False reproduces the code.

    Returns
    -------
    components : (c, D) float32 unit rows.
    weights : (c,) float64 explained-variance ratios of the kept components, renormalised to sum to 1.

    A single target row gives one component, that row. Identical target rows (nothing to centre on)
    give one component, their direction.
    """
    target = np.asarray(target_features, dtype=np.float32)
    if target.ndim != 2 or len(target) == 0:
        raise ValueError(f"target features must be a non-empty 2-D matrix, not shape {target.shape}")
    if mode not in ("variance", "count"):
        raise ValueError(f"mode must be variance or count, not {mode!r}")
    if mode == "variance" and not 0 < ratio < 1:
        raise ValueError(f"variance mode takes a ratio in (0, 1), not {ratio}")
    if mode == "count" and ratio <= 0:
        raise ValueError(f"count mode takes a positive ratio, not {ratio}")
    mean = target.mean(axis=0, dtype=np.float64)
    spread = target - mean if center else target
    if len(target) == 1 or np.einsum("ij,ij->", spread, spread, dtype=np.float64) <= _TINY:
        return _unit(mean)[None, :].astype(np.float32), np.ones(1)
    components, ratios = _principal_axes(target, center)
    if mode == "variance":
        count = int(np.searchsorted(np.cumsum(ratios), ratio, side="right")) + 1
    else:
        count = max(1, int(np.floor(target.shape[1] * ratio)))
    count = min(count, len(components))
    components, ratios = components[:count], ratios[:count]
    if orient:
        components = components * np.where(components @ mean < 0, -1.0, 1.0)[:, None]
    return components.astype(np.float32), ratios / ratios.sum()


def _principal_axes(target: np.ndarray, center: bool) -> tuple[np.ndarray, np.ndarray]:
    """All principal axes (rows, by decreasing variance) and their explained-variance ratios."""
    if center:
        from sklearn.decomposition import PCA

        pca = PCA(svd_solver="full").fit(target)  # the full solver is exact and needs no seed
        return pca.components_.astype(np.float64), pca.explained_variance_ratio_
    from sklearn.utils.extmath import svd_flip

    left, singular, right = np.linalg.svd(target.astype(np.float64), full_matrices=False)
    _, right = svd_flip(left, right, u_based_decision=False)  # the same sign rule as scikit-learn's PCA
    power = singular**2
    return right, power / power.sum()


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector


def gradient_walk(
    features: np.ndarray,
    neighbours: np.ndarray,
    components: np.ndarray,
    weights: np.ndarray,
    budget: int,
    *,
    delta: float = 0.8,
    anchors: int = 1000,
    refill: Refill = "none",
    target_features: np.ndarray | None = None,
    target_groups: np.ndarray | None = None,
    progress: ProgressFn | None = None,
) -> WalkResult:
    """G2IS's gradient walk (docs/algorithms.md 4.5).

    Parameters
    ----------
    features : (n, d) pool gradient features.
    neighbours : (n, M) each row's neighbours sorted by descending similarity (-1 = empty slot), as
        from :func:`core.gradients.graph.top_neighbours`.
    components, weights : from :func:`core_knowledge`; B_c = largest remainder of ``budget`` by weight.
    budget : total number of picks wanted.
    delta : C2 tolerance (the code's ``ways``): |cos(sigma + h_z, k_c)| >= delta * |cos(sigma, k_c)|.
    anchors : the code's anchor list, the top ``anchors`` rows by signed cosine with k_c; the first not
        yet selected is the anchor, else the global argmax over unselected rows. With a stable order
        both rules give the first unselected row of that order, so this never changes the result; it is
        kept to mirror the code.
    refill : "none" (the code): a stopped component's unfilled budget is dropped. "next_component": it
        is added to the next component's budget; what the last component leaves unfilled stays unfilled.
        "less_topk": after the walk, the shortfall is filled with the unselected rows of highest LESS
        score against ``target_features`` (split into tasks by ``target_groups``).
    progress : called with 1 after each pick.
    """
    vectors = np.ascontiguousarray(features, dtype=np.float32)
    directions = np.asarray(components, dtype=np.float32)
    neighbours = np.asarray(neighbours)
    _check_walk_inputs(vectors, neighbours, directions, weights, refill, target_features)
    if budget < 0:
        raise ValueError(f"budget must be >= 0, not {budget}")
    budgets = largest_remainder(np.asarray(weights, dtype=float), int(budget))
    alignment = vectors @ directions.T  # signed cosine of every row with every k_c
    squared_norms = np.einsum("ij,ij->i", vectors, vectors)
    selected = np.zeros(len(vectors), dtype=bool)
    picks: list[int] = []
    owners: list[int] = []
    vias: list[str] = []
    reasons: list[str] = []
    carry = 0
    for c in range(len(directions)):
        wanted = int(budgets[c]) + carry
        walk = _ComponentWalk(vectors, squared_norms, alignment[:, c], selected, delta)
        added, via, reason = walk.run(neighbours, wanted, anchors, progress) if wanted > 0 else ([], [], "no budget")
        picks += added
        owners += [c] * len(added)
        vias += via
        reasons.append(reason)
        carry = wanted - len(added) if refill == "next_component" else 0
    if refill == "less_topk" and target_features is not None:  # _check_walk_inputs refused less_topk without them
        scores = less_scores(vectors, target_features, target_groups)
        order = np.argsort(-scores, kind="stable")
        extra = order[~selected[order]][: max(0, int(budget) - len(picks))].tolist()
        picks, owners, vias = picks + extra, owners + [-1] * len(extra), vias + ["refill"] * len(extra)
    return WalkResult(
        picks=np.array(picks, dtype=np.int64),
        component=np.array(owners, dtype=np.int64),
        via=np.array(vias, dtype=str),
        budgets=budgets,
        shortfall=int(budget) - len(picks),
        stop_reasons=tuple(reasons),
    )


def _check_walk_inputs(
    vectors: np.ndarray,
    neighbours: np.ndarray,
    directions: np.ndarray,
    weights: np.ndarray,
    refill: str,
    target_features: np.ndarray | None,
) -> None:
    if vectors.ndim != 2 or neighbours.ndim != 2 or len(neighbours) != len(vectors):
        raise ValueError(f"neighbours {neighbours.shape} must have one row per feature row {vectors.shape}")
    if directions.ndim != 2 or directions.shape[1] != vectors.shape[1] or len(directions) != len(weights):
        raise ValueError(f"components {directions.shape} and weights {len(weights)} do not match d={vectors.shape[1]}")
    if refill not in ("none", "next_component", "less_topk"):
        raise ValueError(f"refill must be none, next_component or less_topk, not {refill!r}")
    if refill == "less_topk" and target_features is None:
        raise ValueError("refill='less_topk' needs target_features")


class _ComponentWalk:
    """The walk for one component k_c; marks its picks in the shared ``selected`` mask.

    C2 is checked for a batch of candidates at once from sigma . k, ||sigma||^2 and h_z . sigma. C1 uses
    ``min_dot[z]`` = min of h_z . h_s over the picks folded in so far, plus a direct product with the
    picks made since. Folding (one matrix product over the pool for the picks since the last fold, which
    also brings ``pool_sigma[z]`` = h_z . sigma up to date) happens only when a fallback scan goes past
    its first block; from then on both checks are lookups, so a long scan never gathers feature rows,
    and a walk that mostly follows neighbours never pays for a fold.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        squared_norms: np.ndarray,
        alignment: np.ndarray,
        selected: np.ndarray,
        delta: float,
    ):
        self.vectors, self.squared_norms, self.alignment = vectors, squared_norms, alignment
        self.selected, self.delta = selected, delta
        self.order = np.argsort(-alignment, kind="stable")  # the fallback order, fixed for the component
        self.cursor = 0  # order[:cursor] are all selected
        self.picked: list[int] = []
        self.sigma = np.zeros(vectors.shape[1], dtype=np.float64)  # running sum of the picked rows
        self.sigma_k = 0.0  # sigma . k, summed from the cached alignments
        self.min_dot = np.full(len(vectors), np.inf, dtype=np.float32)  # min over folded picks of h_z . h_s
        self.pool_sigma = np.zeros(len(vectors), dtype=np.float64)  # h_z . sigma over folded picks
        self.folded = 0

    def run(
        self, neighbours: np.ndarray, budget: int, anchors: int, progress: ProgressFn | None
    ) -> tuple[list[int], list[str], str]:
        """Returns (picks, via per pick, stop reason)."""
        anchor = self._anchor(anchors)
        if anchor is None:
            return [], [], "pool exhausted"
        self._add(anchor)
        via = ["anchor"]
        if progress:
            progress(1)
        while len(self.picked) < budget:
            row = neighbours[self.picked[-1]]
            pick, how = self._first_feasible(row[row >= 0]), "neighbour"
            if pick is None:
                pick, how = self._fallback(), "fallback"
            if pick is None:
                return self.picked, via, "no feasible sample"
            self._add(pick)
            via.append(how)
            if progress:
                progress(1)
        return self.picked, via, "filled"

    def _anchor(self, anchors: int) -> int | None:
        candidates = self.order[:anchors]
        free = candidates[~self.selected[candidates]]
        if len(free):
            return int(free[0])
        if self.selected.all():
            return None
        return int(np.argmax(np.where(self.selected, -np.inf, self.alignment)))

    def _add(self, row: int) -> None:
        self.picked.append(row)
        self.selected[row] = True
        self.sigma += self.vectors[row]
        self.sigma_k += float(self.alignment[row])

    def _first_feasible(self, candidates: np.ndarray) -> int | None:
        """The first of ``candidates`` (in their order) not selected that satisfies C1 and C2."""
        candidates = candidates[~self.selected[candidates]]
        if not len(candidates):
            return None
        candidates = candidates[self._consistent(candidates)]
        start, size = 0, 8  # C1 costs a product with every recent pick: check a few candidates first
        while start < len(candidates):
            group = candidates[start : start + size]
            ok = np.flatnonzero(self._no_conflict(group))
            if len(ok):
                return int(group[ok[0]])
            start, size = start + size, size * 4
        return None

    def _consistent(self, candidates: np.ndarray) -> np.ndarray:
        """C2: |cos(sigma + h_z, k)| >= delta * |cos(sigma, k)|, with cos of a zero vector taken as 0.

        ||k|| is left out of both sides (it cancels), so k need not be exactly unit.
        """
        sigma_sq = float(self.sigma @ self.sigma)
        old = abs(self.sigma_k) / np.sqrt(sigma_sq) if sigma_sq > _TINY else 0.0
        new_k = self.sigma_k + self.alignment[candidates].astype(np.float64)
        if self.folded == len(self.picked):  # the cache is current: a lookup instead of gathering rows
            cross = self.pool_sigma[candidates]
        else:
            cross = (self.vectors[candidates] @ self.sigma.astype(np.float32)).astype(np.float64)
        new_sq = sigma_sq + 2.0 * cross + self.squared_norms[candidates]  # ||sigma + h_z||^2
        safe = np.where(new_sq > _TINY, new_sq, 1.0)
        new = np.where(new_sq > _TINY, np.abs(new_k) / np.sqrt(safe), 0.0)
        return new >= self.delta * old

    def _no_conflict(self, candidates: np.ndarray) -> np.ndarray:
        """C1: h_z . h_s >= 0 for every pick s of this component."""
        ok = self.min_dot[candidates] >= 0
        recent = self.picked[self.folded :]
        if recent:
            ok &= (self.vectors[candidates] @ self.vectors[recent].T >= 0).all(axis=1)
        return ok

    def _fold(self) -> None:
        """Fold the picks made since the last fold into the caches (one matrix product over the pool)."""
        recent = self.picked[self.folded :]
        if recent:
            dots = self.vectors @ self.vectors[recent].T
            np.minimum(self.min_dot, dots.min(axis=1), out=self.min_dot)
            self.pool_sigma += dots.sum(axis=1, dtype=np.float64)
            self.folded = len(self.picked)

    def _fallback(self) -> int | None:
        """The first unselected row in descending signed cosine with k that satisfies C1 and C2."""
        while self.cursor < len(self.order) and self.selected[self.order[self.cursor]]:
            self.cursor += 1
        start, size = self.cursor, _FIRST_BLOCK
        while start < len(self.order):
            if start > self.cursor:
                self._fold()  # a long scan: make C1 a lookup for the rest of it
            pick = self._first_feasible(self.order[start : start + size])
            if pick is not None:
                return pick
            start, size = start + size, size * 4
        return None


def walk_without_graph(features: np.ndarray, components: np.ndarray, weights: np.ndarray, budget: int) -> WalkResult:
    """The paper's "w/o graph" ablation as we read it: per component, in order, the B_c unselected rows
    of highest signed cosine with k_c; no walk, no C1 or C2 (the paper gives no more detail)."""
    vectors = np.asarray(features, dtype=np.float32)
    directions = np.asarray(components, dtype=np.float32)
    budgets = largest_remainder(np.asarray(weights, dtype=float), int(budget))
    selected = np.zeros(len(vectors), dtype=bool)
    picks: list[int] = []
    owners: list[int] = []
    reasons: list[str] = []
    for c, scores in enumerate((vectors @ directions.T).T):
        order = np.argsort(-scores, kind="stable")
        taken = order[~selected[order]][: int(budgets[c])]
        selected[taken] = True
        picks += [int(i) for i in taken]
        owners += [c] * len(taken)
        reasons.append("no budget" if budgets[c] == 0 else "filled" if len(taken) == budgets[c] else "pool exhausted")
    return WalkResult(
        picks=np.array(picks, dtype=np.int64),
        component=np.array(owners, dtype=np.int64),
        via=np.array(["ranked"] * len(picks), dtype=str),
        budgets=budgets,
        shortfall=int(budget) - len(picks),
        stop_reasons=tuple(reasons),
    )


def less_scores(
    features: np.ndarray, target_features: np.ndarray, target_groups: np.ndarray | None = None
) -> np.ndarray:
    """LESS with one checkpoint: per row, the max over target tasks j of the mean cosine with V_j.

    ``target_groups`` gives each target row's task (None: one task). The mean over V_j of cos(x, v) is
    x . mean(V_j), so this is one (n, tasks) product. Returns (n,) float32.
    """
    target = np.asarray(target_features, dtype=np.float32)
    if target.ndim != 2 or len(target) == 0:
        raise ValueError(f"target features must be a non-empty 2-D matrix, not shape {target.shape}")
    groups = np.zeros(len(target), dtype=int) if target_groups is None else np.asarray(target_groups)
    if len(groups) != len(target):
        raise ValueError(f"{len(groups)} target groups for {len(target)} target rows")
    tasks = np.unique(groups)
    means = np.stack([target[groups == task].mean(axis=0, dtype=np.float64) for task in tasks]).astype(np.float32)
    return (np.asarray(features, dtype=np.float32) @ means.T).max(axis=1)


def less_select(
    features: np.ndarray, target_features: np.ndarray, budget: int, target_groups: np.ndarray | None = None
) -> np.ndarray:
    """The ``budget`` rows of highest :func:`less_scores`, best first (ties: lower row first)."""
    scores = less_scores(features, target_features, target_groups)
    return np.argsort(-scores, kind="stable")[: max(0, int(budget))]


def embedding_knn_select(embeddings: np.ndarray, target_embeddings: np.ndarray, budget: int) -> np.ndarray:
    """The Sentence-BERT kNN baseline: the ``budget`` rows of highest mean cosine with the target
    embeddings, best first (ties: lower row first). Embeddings are L2-normalised."""
    return less_select(embeddings, target_embeddings, budget)
