"""Iterative kMQ and IterIT with a tiny randomly initialised Llama: weights, windows, one schedule, resume."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from core.models import passes
from core.progress import Cancelled
from core.runs import iterative_kmq, iterit, round_scorers
from core.runs.iterative_kmq import IterativeKMQConfig
from core.runs.iterit import IterITConfig
from core.runs.loops import LoopHooks
from core.select.pool import Decisions, Pool
from core.train.trainer import TrainConfig, epoch_steps
from tests.tiny_lm import byte_tokenizer, tiny_causal_lm

TOPICS = ("bread", "python", "planet")  # clusters 0, 1, 2 of the pool; "planet" is the planted one
PLANTED = 2
VETOED_ROWS = 4  # rows of a fourth, vetoed cluster: they exist in the data but not in the pool
CONFIG = TrainConfig(
    target_modules="all-linear", learning_rate=2e-2, batch_size=2, grad_accum=1, epochs=1, max_length=128
)
KMQ = IterativeKMQConfig(budget=6, rounds=2, max_new_tokens=4)


def _rows(topics: tuple[str, ...], per_topic: int) -> pd.DataFrame:
    rows = [
        {"instruction": f"{topic} {i}?", "input": "", "output": f"{topic.title()} fact {i}."}
        for topic in topics
        for i in range(per_topic)
    ]
    return pd.DataFrame(rows)


DATA = _rows((*TOPICS, "vetoed"), 8).iloc[: 3 * 8 + VETOED_ROWS]  # rows 24..27 belong to the vetoed cluster
KEPT = np.arange(3 * 8)


def _pool(weights: dict[int, float] | None = None) -> Pool:
    """The kept rows only, as load_pool gives them: a vetoed cluster's rows are not in the pool at all."""
    cluster_ids = np.repeat(np.arange(3), 8)
    ids = [f"ex{row}" for row in KEPT]
    return Pool(KEPT.copy(), ids, cluster_ids, weights or {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0})


@pytest.fixture(scope="module")
def tiny():
    tokenizer = byte_tokenizer()
    return tiny_causal_lm(tokenizer), tokenizer


@pytest.fixture(scope="module")
def whole_kmq(tiny, tmp_path_factory):
    """An uninterrupted two-round run with the default perplexity-difference scorer."""
    model, tokenizer = tiny
    out = tmp_path_factory.mktemp("kmq") / "whole"
    pool = _pool()
    return iterative_kmq.run_iterative_kmq(model, tokenizer, pool, DATA.iloc[KEPT], KMQ, CONFIG, out), out


# --- iterative kMQ --------------------------------------------------------------------------------


def planted_scorer(model, tokenizer, frame, generations):
    """Gold clearly better than the generation in the planted cluster only."""
    assert len(generations) == len(frame)
    return np.where(frame.instruction.str.startswith(TOPICS[PLANTED]), 2.0, 0.0)


def test_a_cluster_whose_gold_beats_the_generation_gains_weight_and_the_largest_next_quota(tiny, tmp_path):
    model, tokenizer = tiny
    result = iterative_kmq.run_iterative_kmq(
        model, tokenizer, _pool(), DATA.iloc[KEPT], KMQ, CONFIG, tmp_path, scorer=planted_scorer
    )
    first, second = result.rounds
    np.testing.assert_allclose(first.weights_before, np.full(3, 1 / 3))  # round 1: uniform over kept clusters
    assert first.quotas.tolist() == [1, 1, 1]  # equal sizes, uniform weights: static kMQ's allocation of b/T = 3
    assert first.weights_after[PLANTED] > 1 / 3 > first.weights_after[0]
    np.testing.assert_allclose(first.weights_after, np.array([1, 1, np.e**2]) / (2 + np.e**2))  # w * exp(s)
    np.testing.assert_array_equal(second.weights_before, first.weights_after)
    assert np.argmax(second.quotas) == PLANTED and second.quotas[PLANTED] > max(second.quotas[:PLANTED])
    assert second.weights_after[PLANTED] > first.weights_after[PLANTED]


def test_the_default_scorer_loop_keeps_weights_normalised_and_picks_unique_kept_examples(whole_kmq):
    result, out = whole_kmq
    assert len(result.rounds) == 2 and [len(r.new_positions) for r in result.rounds] == [3, 3]
    assert len(result.positions) == KMQ.budget == len(set(result.positions.tolist()))
    assert set(result.positions.tolist()) <= set(range(len(KEPT)))  # pool positions, never a vetoed row
    assert result.example_ids == [f"ex{KEPT[p]}" for p in result.positions]
    for record in result.rounds:
        for weights in (record.weights_before, record.weights_after):
            assert np.all(weights > 0) and weights.sum() == pytest.approx(1.0)
        assert np.all(np.isfinite(record.example_scores))
    # round 2 scores everything selected so far (the default), and the files say what the records say
    assert sorted(result.rounds[1].scored_positions.tolist()) == sorted(result.positions.tolist())
    saved = json.loads((out / "round_2" / "selection.json").read_text())
    assert saved["positions"] == result.rounds[1].new_positions.tolist()
    assert not set(saved["row_idx"]) & set(range(len(KEPT), len(DATA)))
    weights = json.loads((out / "round_1" / "weights.json").read_text())
    np.testing.assert_allclose(weights["after"], result.rounds[0].weights_after)
    assert len(json.loads((out / "round_2" / "scores.json").read_text())) == KMQ.budget
    assert (out / "round_2" / "train" / "final" / "adapter_model.safetensors").exists()


def test_a_curator_weight_of_zero_gives_a_cluster_nothing_and_bad_budgets_are_refused(tiny, tmp_path):
    model, tokenizer = tiny
    pool = _pool({0: 1.0, 1: 0.0, 2: 1.0})
    with pytest.raises(ValueError, match="budget"):
        iterative_kmq.run_iterative_kmq(
            model, tokenizer, pool, DATA.iloc[KEPT], IterativeKMQConfig(17, 2), CONFIG, tmp_path
        )
    with pytest.raises(ValueError, match="aligned"):
        iterative_kmq.run_iterative_kmq(model, tokenizer, pool, DATA, IterativeKMQConfig(6, 2), CONFIG, tmp_path)
    settings = IterativeKMQConfig(2, 1, max_new_tokens=2)
    result = iterative_kmq.run_iterative_kmq(
        model, tokenizer, pool, DATA.iloc[KEPT], settings, CONFIG, tmp_path / "run", scorer=planted_scorer
    )
    assert result.rounds[0].quotas.tolist() == [1, 0, 1]
    assert not np.isin(result.positions, np.flatnonzero(pool.cluster_ids == 1)).any()
    assert result.weights[1] == 0


def test_continue_training_starts_each_round_from_the_previous_rounds_model(tiny, tmp_path, monkeypatch):
    import torch

    model, tokenizer = tiny
    no_warmup = dataclasses.replace(CONFIG, warmup_ratio=0.0)  # one step per round: warmup would make its LR 0
    starts = []
    real_train = iterative_kmq.train
    monkeypatch.setattr(iterative_kmq, "train", lambda *a, **k: starts.append(a[0]) or real_train(*a, **k))
    pool, examples = _pool(), DATA.iloc[KEPT]
    settings = IterativeKMQConfig(2, 2, continue_training=True, max_new_tokens=2)
    iterative_kmq.run_iterative_kmq(
        model, tokenizer, pool, examples, settings, no_warmup, tmp_path, scorer=planted_scorer
    )
    assert starts[0] is model
    assert starts[1] is not model and not hasattr(starts[1], "peft_config")  # round 1's adapter, merged in
    before, after = model.state_dict(), starts[1].state_dict()
    assert any(not torch.equal(before[name], after[name]) for name in before)


def test_a_rerun_after_round_one_skips_it_and_ends_with_the_weights_of_an_uninterrupted_run(
    tiny, whole_kmq, tmp_path, monkeypatch
):
    model, tokenizer = tiny
    whole, _ = whole_kmq
    stop = {"now": False}
    with pytest.raises(Cancelled):
        iterative_kmq.run_iterative_kmq(
            model,
            tokenizer,
            _pool(),
            DATA.iloc[KEPT],
            KMQ,
            CONFIG,
            tmp_path,
            hooks=LoopHooks(on_round=lambda record: stop.update(now=True), should_stop=lambda: stop["now"]),
        )
    assert (tmp_path / "round_1" / "done.json").exists() and not (tmp_path / "round_2").exists()

    calls = []
    real_train = iterative_kmq.train
    monkeypatch.setattr(iterative_kmq, "train", lambda *a, **k: calls.append(len(a[2])) or real_train(*a, **k))
    resumed = iterative_kmq.run_iterative_kmq(model, tokenizer, _pool(), DATA.iloc[KEPT], KMQ, CONFIG, tmp_path)
    assert calls == [6]  # only round 2 trained, on the cumulative selection
    assert [r.resumed for r in resumed.rounds] == [True, False]
    np.testing.assert_array_equal(resumed.positions, whole.positions)
    np.testing.assert_allclose(resumed.weights, whole.weights, rtol=1e-9)
    with pytest.raises(ValueError, match="other parameters"):
        iterative_kmq.run_iterative_kmq(
            model, tokenizer, _pool(), DATA.iloc[KEPT], IterativeKMQConfig(6, 3), CONFIG, tmp_path
        )


def test_decisions_changed_while_a_run_is_paused_hold_from_the_next_round(tiny, tmp_path):
    """Round 1 runs, the run is paused mid-way through round 2's training, the curator vetoes a cluster
    and one example already trained on, and the resumed round 2 follows the new decisions."""
    model, tokenizer = tiny
    pool = _pool()
    curator = {"eligible": np.ones(len(pool), dtype=bool), "weights": {0: 1.0, 1: 1.0, 2: 1.0}}

    def decisions() -> Decisions:
        return Decisions(curator["eligible"].copy(), dict(curator["weights"]), {"weights": dict(curator["weights"])})

    steps = []
    hooks = LoopHooks(decisions=decisions, on_step=steps.append)
    run = dict(
        settings=IterativeKMQConfig(6, 2, max_new_tokens=2), config=CONFIG, out_dir=tmp_path, scorer=planted_scorer
    )
    with pytest.raises(Cancelled):  # round 1: 3 examples, 2 steps; stop after round 2's first step
        iterative_kmq.run_iterative_kmq(
            model,
            tokenizer,
            pool,
            DATA.iloc[KEPT],
            hooks=dataclasses.replace(hooks, should_stop=lambda: len(steps) == 3),
            **run,
        )
    first = np.array(json.loads((tmp_path / "round_1" / "selection.json").read_text())["positions"])
    assert sorted(pool.cluster_ids[first]) == [0, 1, 2]  # proportional: one per cluster
    assert (tmp_path / "round_2" / "train" / "checkpoint").exists()

    victim = int(first[pool.cluster_ids[first] == 0][0])  # trained on in round 1, vetoed now
    curator["weights"][1] = 0.0
    curator["eligible"][pool.cluster_ids == 1] = False
    curator["eligible"][victim] = False
    steps.clear()
    result = iterative_kmq.run_iterative_kmq(model, tokenizer, pool, DATA.iloc[KEPT], hooks=hooks, **run)

    second = result.rounds[1]
    assert second.quotas[1] == 0 and not np.isin(second.new_positions, np.flatnonzero(pool.cluster_ids == 1)).any()
    assert sorted(second.dropped_positions) == sorted([victim, int(first[pool.cluster_ids[first] == 1][0])])
    assert len(result.positions) == 6 and curator["eligible"][result.positions].all()  # the budget, all kept
    assert second.decisions == {"weights": {0: 1.0, 1: 0.0, 2: 1.0}}
    assert steps[0].step == 1 and len(steps) == 3  # round 2 trained afresh on its new set, not from the checkpoint
    saved = json.loads((tmp_path / "round_2" / "selection.json").read_text())
    assert saved["dropped_example_ids"] == [pool.example_ids[i] for i in second.dropped_positions]


def test_the_embedding_scorer_prefers_a_gold_answer_that_shares_the_prompt_words():
    frame = pd.DataFrame({"instruction": ["bake sourdough bread"], "input": [""], "output": ["bake bread slowly"]})
    scorer = round_scorers.EmbeddingSimilarityScorer(embedder={"name": "hashing", "dim": 64})
    assert scorer(None, None, frame, ["python lists sort numbers"])[0] > 0
    assert scorer(None, None, frame, ["bake sourdough bread"])[0] < 0


# --- IterIT ---------------------------------------------------------------------------------------

ITERIT_DATA = _rows(TOPICS, 4)  # 12 examples
ITERIT = IterITConfig(epochs=3, per_epoch=2, update_ratio=2)  # window u x m = 4


class SpyIFD:
    """The real IFD under the model it is given, halved so that every example is a candidate (a random tiny
    model puts IFD at 1 +- 0.003); records which examples were scored with which model."""

    def __init__(self):
        self.calls: list[tuple[int, list[int]]] = []

    def __call__(self, model, tokenizer, frame):
        position = {text: i for i, text in enumerate(ITERIT_DATA.instruction)}
        self.calls.append((id(model), [position[text] for text in frame.instruction]))
        return passes.ifd_scores(model, tokenizer, frame, max_length=CONFIG.max_length) * 0.5


@pytest.fixture(scope="module")
def iterit_run(tiny, tmp_path_factory):
    model, tokenizer = tiny
    spy = SpyIFD()
    out = tmp_path_factory.mktemp("iterit") / "whole"
    return iterit.run_iterit(model, tokenizer, ITERIT_DATA, ITERIT, CONFIG, out, ifd=spy), spy


def test_iterit_rescores_exactly_the_top_window_with_the_model_being_trained(tiny, iterit_run):
    model, _ = tiny
    result, spy = iterit_run
    assert len(spy.calls) == 3
    assert spy.calls[0] == (id(model), list(range(12)))  # epoch 0: everything, with the base model
    window = ITERIT.update_ratio * ITERIT.per_epoch
    latest = result.epochs[0].ifd_after.copy()  # epoch 0 scored every example, in position order
    for epoch in (1, 2):
        model_id, positions = spy.calls[epoch]
        record = result.epochs[epoch]
        assert model_id == id(result.model)  # the current training model, not the base
        assert positions == result.epochs[epoch - 1].order[:window].tolist()
        assert record.rescored.tolist() == positions
        np.testing.assert_array_equal(record.ifd_before, latest[positions])  # the stale values it replaces
        latest[positions] = record.ifd_after
    np.testing.assert_array_equal(result.ifd, latest)
    for record in result.epochs:
        assert len(record.picks) == 2 and set(record.picks) <= set(record.rescored.tolist())
        assert np.isfinite(record.mean_loss) and record.steps == 1


def test_iterit_follows_vetoes_made_between_epochs(tiny, tmp_path):
    """A vetoed example is never scored again nor picked; the window takes the next eligible ones instead."""
    model, tokenizer = tiny
    spy, eligible, vetoed = SpyIFD(), np.ones(len(ITERIT_DATA), dtype=bool), []

    def veto_the_picks(record) -> None:  # the curator vetoes whatever epoch 0 picked, before epoch 1
        if record.epoch == 0:
            vetoed.extend(record.picks.tolist())
            eligible[record.picks] = False

    def decisions() -> Decisions:
        return Decisions(eligible.copy(), {}, {"vetoed_examples": sorted(vetoed)})

    hooks = LoopHooks(on_round=veto_the_picks, decisions=decisions)
    result = iterit.run_iterit(model, tokenizer, ITERIT_DATA, ITERIT, CONFIG, tmp_path, ifd=spy, hooks=hooks)
    window = ITERIT.update_ratio * ITERIT.per_epoch
    for epoch in (1, 2):
        record = result.epochs[epoch]
        assert not set(record.rescored) & set(vetoed) and not set(record.picks) & set(vetoed)
        assert len(record.rescored) == window  # filled with the next eligible examples
        assert record.decisions == {"vetoed_examples": sorted(vetoed)}
    assert result.epochs[0].decisions == {"vetoed_examples": []}


def test_iterit_trains_all_epochs_under_one_learning_rate_schedule(iterit_run):
    result, _ = iterit_run
    session = result.session
    assert session.total_steps == ITERIT.epochs * epoch_steps(ITERIT.per_epoch, CONFIG) == 3
    assert session.step == session.scheduler.last_epoch == session.total_steps
    assert session.scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)  # the cosine reached its end


def test_static_iterit_scores_once_and_reuses_the_epoch_zero_selection(tiny, tmp_path):
    model, tokenizer = tiny
    spy = SpyIFD()
    static = dataclasses.replace(ITERIT, static=True)
    result = iterit.run_iterit(model, tokenizer, ITERIT_DATA, static, CONFIG, tmp_path, ifd=spy)
    assert len(spy.calls) == 1
    assert all(record.picks.tolist() == result.epochs[0].picks.tolist() for record in result.epochs)
    assert [len(record.rescored) for record in result.epochs] == [12, 0, 0]


def test_a_rerun_of_iterit_after_epoch_one_resumes_to_the_uninterrupted_result(tiny, iterit_run, tmp_path):
    import torch

    model, tokenizer = tiny
    whole, _ = iterit_run
    stop = {"now": False}
    with pytest.raises(Cancelled):
        iterit.run_iterit(
            model,
            tokenizer,
            ITERIT_DATA,
            ITERIT,
            CONFIG,
            tmp_path,
            ifd=SpyIFD(),
            hooks=LoopHooks(
                on_round=lambda record: stop.update(now=record.epoch == 1), should_stop=lambda: stop["now"]
            ),
        )
    spy = SpyIFD()
    resumed = iterit.run_iterit(model, tokenizer, ITERIT_DATA, ITERIT, CONFIG, tmp_path, ifd=spy)
    assert len(spy.calls) == 1 and [r.resumed for r in resumed.epochs] == [True, True, False]
    for mine, theirs in zip(resumed.epochs, whole.epochs, strict=True):
        np.testing.assert_array_equal(mine.picks, theirs.picks)
    trained = {name: p for name, p in resumed.model.named_parameters() if p.requires_grad}
    for name, value in whole.model.named_parameters():
        if value.requires_grad:
            assert torch.equal(trained[name], value), name
