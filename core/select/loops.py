"""The model-free logic of the two iterative selection loops: iterative kMQ and IterIT (docs/algorithms.md 2.6, 3.5).

Everything here is arrays in, arrays out: the training loop owns the model (fine-tuning, generation,
scoring) and calls these functions between its model steps, so the selection logic can be tested
exactly without one.

Iterative kMQ (docs/algorithms.md 2.6, the "recommended faithful implementation"), per round ``t`` of ``T``::

    quotas = next_round_quotas(sizes, remaining, weights, budgets[t], curator_weights)
    picks  = sample_round(rng, cluster_ids, available, quotas, quality)      # kMQ sample at t = 0
    ... fine-tune on everything selected so far, generate for the selected prompts, score them ...
    scores  = ppl_difference_scores(nll_gold, nll_generated)               # Eq. 4 / 7
    weights = update_weights(weights, cluster_scores(scores, cluster_ids[selected], clusters))

Per-cluster arrays (sizes, weights, quotas, scores) are aligned with one ``clusters`` array of cluster
ids; per-example arrays with ``cluster_ids``.

IterIT (docs/algorithms.md 3.5), per epoch::

    positions = positions_to_score(state, n, per_epoch, update_ratio)   # all at epoch 0, then the window
    ... IFD of those positions under the current model ...
    state = next_epoch(state, positions, new_ifd, outputs, per_epoch)   # state.picks: this epoch's data

Both reuse the static pieces rather than re-implementing them: quotas come from
:func:`core.select.allocation.allocate` (largest remainder, capacity caps, redistribution),
within-cluster draws from :class:`~core.select.strategies.KMQStrategy`, and IterIT's greedy from
:class:`~core.select.strategies.IterITGreedyStrategy` (``greedy.tfidf_greedy`` on a response TF-IDF).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from core.select.allocation import allocate, largest_remainder
from core.select.pool import Pool
from core.select.strategies import IterITGreedyStrategy, KMQStrategy

# ---------------------------------------------------------------------------------------------------
# Iterative kMQ
# ---------------------------------------------------------------------------------------------------


def round_budgets(budget: int, rounds: int) -> list[int]:
    """The per-round budgets b/T, earlier rounds taking the remainder, summing exactly to ``budget``."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds}")
    return [int(b) for b in largest_remainder(np.ones(rounds), int(budget))]


def initial_weights(curator_weights: np.ndarray) -> np.ndarray:
    """w^0: uniform over the clusters the curator kept (weight > 0), 0 for vetoed ones (Alg. 1 line 1).

    The learned weights start uniform and the curator's weights multiply them only at allocation, so
    the update learns from the model's scores alone and the curator's preference is never compounded.
    """
    kept = np.asarray(curator_weights, dtype=float) > 0
    if not kept.any():
        raise ValueError("every cluster is vetoed: there is nothing to select")
    return kept / kept.sum()


def cluster_counts(cluster_ids: np.ndarray, clusters: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Examples per cluster (aligned with ``clusters``), counting only where ``mask`` is true if given.

    ``cluster_counts(ids, clusters)`` gives the sizes, ``cluster_counts(ids, clusters, available)`` what
    is left to select.
    """
    index = _cluster_index(cluster_ids, clusters)
    weights = None if mask is None else np.asarray(mask, dtype=float)
    return np.bincount(index, weights=weights, minlength=len(clusters)).astype(int)


def ppl_difference_scores(
    nll_gold: np.ndarray, nll_generated: np.ndarray, *, convention: Literal["gold_better", "eq7"] = "gold_better"
) -> np.ndarray:
    """Per-example score S_i of Eq. 4 with the perplexity scorer, from mean per-token NLLs (= log PPL).

    ``gold_better`` (default): S = log PPL(generation) - log PPL(gold) = nll_generated - nll_gold.
    S > 0 when the current model finds the gold response more likely than its own generation, i.e.
    the reference beats the model's answer, so the cluster GAINS weight: the same direction as Eq. 4
    with a reward model (S = r_gold - r_gen) and with score = -log PPL ("lower perplexity is better").
    ``eq7``: Eq. 7 as printed, -log(PPL(gen) / PPL(gold)) = nll_gold - nll_generated, which equals
    Eq. 4 only with score = +log PPL and upweights clusters whose gold the model finds *surprising*
    (docs/algorithms.md 2.6 and 2.10 item 10 call the sign ambiguous; kept for reproduction).

    Log-perplexities rather than raw perplexities: a raw PPL difference is dominated by a few very
    surprising texts (gibberish reaches thousands) and would make exp(S / temperature) overflow; with
    log PPL, exp(S) is exactly the ratio PPL(gen) / PPL(gold). A NaN (example not scored) stays NaN.
    """
    gold = np.asarray(nll_gold, dtype=float)
    generated = np.asarray(nll_generated, dtype=float)
    if convention == "gold_better":
        return generated - gold
    if convention == "eq7":
        return gold - generated
    raise ValueError(f"convention must be gold_better or eq7, not {convention!r}")


def cluster_scores(example_scores: np.ndarray, cluster_ids: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """s_j of Eq. 5: the mean score of cluster j's scored examples, NaN for a cluster with none.

    ``example_scores[i]`` belongs to an example of cluster ``cluster_ids[i]`` (the examples scored this
    round, typically everything selected so far). NaN example scores are ignored. A NaN cluster score
    means "no evidence": :func:`update_weights` leaves that cluster's weight unchanged (the code would
    crash instead; docs/algorithms.md 2.6).
    """
    scores = np.asarray(example_scores, dtype=float)
    index = _cluster_index(cluster_ids, clusters)
    scored = np.isfinite(scores)
    totals = np.bincount(index[scored], weights=scores[scored], minlength=len(clusters))
    counts = np.bincount(index[scored], minlength=len(clusters))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def update_weights(
    weights: np.ndarray,
    cluster_scores: np.ndarray,
    *,
    rule: Literal["paper", "code"] = "paper",
    temperature: float = 1.0,
) -> np.ndarray:
    """The next cluster weights: positive for kept clusters, 0 for vetoed ones, summing to 1.

    ``paper`` (default): w_j <- w_j * exp(s_j / temperature), renormalised. This is Eq. 6's
    multiplicative update made positive-safe (docs/algorithms.md 2.6 recommendation): Eq. 6 as printed,
    w_j * s_j / sum_c s_c, is undefined or negative once some s_j <= 0, which Eq. 4 allows and the
    perplexity scorer makes common (a model's own greedy output usually has the lower perplexity).
    exp(s / T) ~ 1 + s / T for small s, and only differences between clusters matter: adding a
    constant to every score changes nothing.
    ``code``: the released code's fresh softmax(s / temperature), ignoring the previous weights
    (docs/algorithms.md 2.10 item 7, GitHub issue #10).

    In both, a cluster with weight 0 (vetoed) stays 0, and a cluster with a NaN score keeps its
    weight exactly; the scored clusters share the rest of the mass. The exponent is max-subtracted
    (no overflow) and a kept cluster's weight is floored at the smallest positive float, so an
    extreme score can never turn a kept cluster into a vetoed one.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, not {temperature}")
    if rule not in ("paper", "code"):
        raise ValueError(f"rule must be paper or code, not {rule!r}")
    weights = np.clip(np.asarray(weights, dtype=float), 0.0, None)
    scores = np.asarray(cluster_scores, dtype=float)
    if weights.shape != scores.shape:
        raise ValueError(f"{len(weights)} weights but {len(scores)} cluster scores")
    if weights.sum() <= 0:
        raise ValueError("every cluster has weight 0: there is nothing to select")
    weights = weights / weights.sum()
    kept = weights > 0
    scored = kept & np.isfinite(scores)
    if not scored.any():
        return weights
    logits = scores[scored] / temperature
    if rule == "paper":
        logits = logits + np.log(weights[scored])
    shares = np.exp(logits - logits.max())
    updated = weights.copy()
    updated[scored] = weights[scored].sum() * shares / shares.sum()
    updated[kept] = np.maximum(updated[kept], np.finfo(float).tiny)
    return updated / updated.sum()


def next_round_quotas(
    sizes: np.ndarray,
    remaining_sizes: np.ndarray,
    weights: np.ndarray,
    round_budget: int,
    curator_weights: np.ndarray,
    *,
    allocation: Literal["proportional", "equal"] = "proportional",
) -> np.ndarray:
    """How many new examples each cluster gives this round (aligned with ``clusters``).

    A cluster's share is learned weight x curator weight, times its full size under ``proportional``
    (default): with uniform weights that is static kMQ's paper allocation (b_j ~ |D_j|), so round 1 is
    the kMQ sample of b/T (docs/algorithms.md 2.6), and the learned weights tilt it from there. ``equal``
    drops the size factor: share = weight, as the code's draw of cluster ids with p = w does.

    The shares go to :func:`allocate` with the remaining (unselected, unvetoed) sizes as capacities,
    so quotas never exceed what is left, sum exactly to ``min(round_budget, capacity)`` by largest
    remainder, and a full cluster passes its surplus to the others in proportion. Deterministic,
    where the code draws a multinomial (docs/algorithms.md 2.6 step 6 allows either).
    """
    if allocation not in ("proportional", "equal"):
        raise ValueError(f"allocation must be proportional or equal, not {allocation!r}")
    shares = np.asarray(weights, dtype=float) * np.clip(np.asarray(curator_weights, dtype=float), 0.0, None)
    if allocation == "proportional":
        shares = shares * np.asarray(sizes, dtype=float)
    return allocate(np.asarray(remaining_sizes, dtype=int), int(round_budget), mode="equal", weights=shares)


def sample_round(
    rng: np.random.Generator,
    cluster_ids: np.ndarray,
    available_mask: np.ndarray,
    quotas: np.ndarray,
    quality: np.ndarray | None = None,
    within: Literal["weighted", "softmax", "uniform"] = "weighted",
    *,
    clusters: np.ndarray | None = None,
    temperature: float = 1.0,
) -> np.ndarray:
    """Positions of this round's new picks: ``quotas[j]`` available examples of cluster ``clusters[j]``.

    ``available_mask`` is false for examples already selected or vetoed; they are never returned.
    ``clusters`` defaults to the sorted distinct ``cluster_ids`` (the convention of the static
    strategies). Within a cluster the draw is exactly kMQ's (:class:`KMQStrategy`, ``within``:
    ``weighted`` p ~ quality, the paper's rule and default; ``softmax`` the code's; ``uniform`` the
    code's rule after round 1). ``quality=None`` means uniform. Clusters are visited in order, so
    the same ``rng`` state gives the same picks.
    """
    cluster_ids = np.asarray(cluster_ids)
    available = np.asarray(available_mask, dtype=bool)
    clusters = np.unique(cluster_ids) if clusters is None else np.asarray(clusters)
    quotas = np.asarray(quotas, dtype=int)
    if len(quotas) != len(clusters):
        raise ValueError(f"{len(quotas)} quotas but {len(clusters)} clusters")
    q = np.zeros(len(cluster_ids)) if quality is None else np.asarray(quality, dtype=float)
    strategy = KMQStrategy(
        allocation="equal", within="uniform" if quality is None else within, quality="q", temperature=temperature
    )
    index = _cluster_index(cluster_ids, clusters)
    picks = []
    for j in np.flatnonzero(quotas > 0):
        members = np.flatnonzero(available & (index == j))
        if quotas[j] > len(members):
            raise ValueError(f"cluster {clusters[j]} has {len(members)} examples left, quota {quotas[j]}")
        picks.append(members[_draw_within(strategy, q[members], int(quotas[j]), rng)])
    return np.concatenate(picks) if picks else np.array([], dtype=int)


def _draw_within(strategy: KMQStrategy, quality: np.ndarray, quota: int, rng: np.random.Generator) -> np.ndarray:
    """KMQStrategy's within-cluster draw, through a one-cluster pool: its quota is the whole budget."""
    n = len(quality)
    pool = Pool(
        np.arange(n), [str(i) for i in range(n)], np.zeros(n, dtype=int), {}, scores=pd.DataFrame({"q": quality})
    )
    return strategy.select(pool, quota, rng=rng)


def _cluster_index(cluster_ids: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """For each example, the position of its cluster in ``clusters``; an error for an unknown cluster."""
    cluster_ids = np.asarray(cluster_ids)
    clusters = np.asarray(clusters)
    unknown = ~np.isin(cluster_ids, clusters)
    if unknown.any():
        raise ValueError(f"cluster {cluster_ids[unknown][0]} is not in the list of clusters")
    sorter = np.argsort(clusters, kind="stable")
    return sorter[np.searchsorted(clusters, cluster_ids, sorter=sorter)].astype(int)


# ---------------------------------------------------------------------------------------------------
# IterIT
# ---------------------------------------------------------------------------------------------------


def window(
    previous_order: np.ndarray, per_epoch: int, update_ratio: float, *, exclude: np.ndarray | None = None
) -> np.ndarray:
    """The examples to re-score before an epoch: the first u x m positions of the previous ordering.

    The ordering puts the picks first, then the IFD >= 1 rejects, then the next best (see
    :func:`epoch_selection`), so the window is the "top-ranked samples" of docs/algorithms.md 3.5 and 3.9
    item 4. ``update_ratio`` <= 1 re-scores everything, as the code does. ``exclude`` (a boolean
    mask over examples, e.g. known IFD >= 1) skips those and takes the next ones instead: the flag
    docs/algorithms.md 3.5 suggests, since at epoch 1 the code spends part of its window on old rejects.
    """
    order = np.asarray(previous_order, dtype=int)
    if exclude is not None:
        order = order[~np.asarray(exclude, dtype=bool)[order]]
    if update_ratio <= 1:
        return order
    return order[: int(update_ratio * per_epoch)]


def epoch_selection(
    ifd: np.ndarray,
    outputs: Sequence[str],
    per_epoch: int,
    decay: float,
    ngram_max: int = 3,
    *,
    score: Literal["both", "ifd", "diversity"] = "both",
) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's greedy selection over a candidate set: (picks, ordering), positions into ``ifd``.

    The picks are :class:`IterITGreedyStrategy`'s (IFD < 1, greedy IFD x response TF-IDF with
    ``decay``, TF-IDF refitted on these candidates), at most ``per_epoch`` and fewer when fewer have
    IFD < 1 (the code would pick duplicates). The ordering is the code's (``SupervisedDataset.update``):
    the picks in pick order, then the IFD >= 1 rejects in their given order, then the other
    candidates by IFD descending; examples without an IFD (NaN) go last rather than being lost.
    """
    ifd = np.asarray(ifd, dtype=float)
    if len(outputs) != len(ifd):
        raise ValueError(f"{len(ifd)} IFD values but {len(outputs)} outputs")
    candidates = np.flatnonzero(np.isfinite(ifd) & (ifd < 1))
    picks = np.array([], dtype=int)
    if len(candidates) and per_epoch > 0:
        n = len(ifd)
        ids = [str(i) for i in range(n)]
        pool = Pool(
            np.arange(n), ids, np.zeros(n, dtype=int), {}, scores=pd.DataFrame({"ifd": ifd}), outputs=list(outputs)
        )
        strategy = IterITGreedyStrategy(decay=decay, ngram_max=ngram_max, score=score)
        picks = strategy.select(pool, per_epoch, rng=np.random.default_rng(0)).astype(int)  # deterministic: rng unused
    rejects = np.flatnonzero(np.isfinite(ifd) & (ifd >= 1))
    rest = np.setdiff1d(candidates, picks)
    rest = rest[np.argsort(-ifd[rest], kind="stable")]
    unscored = np.flatnonzero(~np.isfinite(ifd))
    return picks, np.concatenate([picks, rejects, rest, unscored]).astype(int)


def merge_rescored(ifd_all: np.ndarray, window_positions: np.ndarray, new_ifd: np.ndarray) -> np.ndarray:
    """A copy of ``ifd_all`` with the window's values replaced by the fresh ones; the rest stays stale."""
    window_positions = np.asarray(window_positions, dtype=int)
    new_ifd = np.asarray(new_ifd, dtype=float)
    if len(window_positions) != len(new_ifd):
        raise ValueError(f"{len(window_positions)} window positions but {len(new_ifd)} new IFD values")
    merged = np.array(ifd_all, dtype=float, copy=True)
    merged[window_positions] = new_ifd
    return merged


def reorder(previous_order: np.ndarray, window_positions: np.ndarray, window_ordering: np.ndarray) -> np.ndarray:
    """The next global ordering: the window in its new order first, everything else in its old order.

    With the default window (a prefix of ``previous_order``) this is the code's "reorder inside W,
    positions beyond W keep their order".
    """
    window_positions = np.asarray(window_positions, dtype=int)
    previous_order = np.asarray(previous_order, dtype=int)
    outside = previous_order[~np.isin(previous_order, window_positions)]
    return np.concatenate([window_positions[np.asarray(window_ordering, dtype=int)], outside])


@dataclasses.dataclass(frozen=True)
class IterITEpoch:
    """One epoch's outcome: ``picks`` to train on (pick order), the ``order`` the next window is cut
    from, and the latest ``ifd`` of every example (stale outside the windows, NaN if never scored)."""

    picks: np.ndarray
    order: np.ndarray
    ifd: np.ndarray


def positions_to_score(
    previous: IterITEpoch | None,
    n_examples: int,
    per_epoch: int,
    update_ratio: float,
    *,
    static: bool = False,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Which examples the model must score before this epoch's selection.

    Epoch 0 (``previous`` None): all of them. Later: the :func:`window`, or none when ``static`` (the
    code's ``baseline`` strategy: score once, train every epoch on the epoch-0 selection).
    """
    if previous is None:
        return np.arange(n_examples)
    if static:
        return np.array([], dtype=int)
    return window(previous.order, per_epoch, update_ratio, exclude=exclude)


def next_epoch(
    previous: IterITEpoch | None,
    scored_positions: np.ndarray,
    new_ifd: np.ndarray,
    outputs: Sequence[str],
    per_epoch: int,
    *,
    decay: float = 0.1,
    ngram_max: int = 3,
    score: Literal["both", "ifd", "diversity"] = "both",
    static: bool = False,
) -> IterITEpoch:
    """The selection for this epoch from the fresh IFD of ``scored_positions`` (see :func:`positions_to_score`).

    Epoch 0 selects over everything; later epochs re-run :func:`epoch_selection` inside the window
    only (its TF-IDF refitted on the window's candidates) and :func:`reorder` the global ordering.
    ``static`` (the ablation) returns ``previous`` unchanged after epoch 0.
    """
    if previous is not None and static:
        return previous
    scored_positions = np.asarray(scored_positions, dtype=int)
    if previous is None:
        previous_ifd, previous_order = np.full(len(outputs), np.nan), np.arange(len(outputs))
    else:
        previous_ifd, previous_order = previous.ifd, previous.order
    ifd = merge_rescored(previous_ifd, scored_positions, new_ifd)
    local_picks, local_order = epoch_selection(
        ifd[scored_positions], [outputs[i] for i in scored_positions], per_epoch, decay, ngram_max, score=score
    )
    order = reorder(previous_order, scored_positions, local_order)
    return IterITEpoch(picks=scored_positions[local_picks], order=order, ifd=ifd)
