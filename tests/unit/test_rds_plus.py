"""RDS+: the position-weighted pooling of the base model's hidden states (padding counts nowhere), round-robin and
max selection on hand-built cases, the clear error when features are missing, and the features computed on the
tiny model through the pipeline, cancelled half way, resumed, and selected from with the CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from core import cli
from core.errors import MissingScores
from core.hidden import pipeline
from core.progress import Cancelled, Progress
from core.select import rds
from core.select.pool import Pool
from core.select.run import build_strategy, run_selection
from core.storage import datasets as ds
from core.storage import hidden as hstore
from core.storage.database import Store

TWO_ROWS = pd.DataFrame(
    {
        "instruction": ["Name a bread.", "Explain, in a few words, what the capital of France is and why."],
        "input": ["", "Be precise."],
        "output": ["Rye.", "Paris: it holds the government."],
    }
)


@pytest.fixture(scope="module")
def tiny():
    from tests.tiny_lm import byte_tokenizer, tiny_causal_lm

    tokenizer = byte_tokenizer()
    return tiny_causal_lm(tokenizer), tokenizer


def _by_hand(model, ids: list[int]) -> np.ndarray:
    """One example alone (no padding): final hidden states, token i weighted i / sum j, L2-normalised."""
    import torch

    with torch.no_grad():
        states = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0].numpy()
    weights = np.arange(1, len(ids) + 1, dtype=np.float64)
    pooled = (states * (weights / weights.sum())[:, None]).sum(axis=0)
    return pooled / np.linalg.norm(pooled)


def test_position_weights_grow_with_the_position_and_give_padding_nothing():
    import torch

    from core.models.hidden import position_weights

    weights = position_weights(torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])).numpy()
    np.testing.assert_allclose(weights[0], [1 / 6, 2 / 6, 3 / 6, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(weights[1], np.arange(1, 6) / 15, rtol=1e-6)


def test_pooled_features_of_two_padded_examples_equal_the_hand_computation(tiny):
    from core.models.hidden import length_batches, pooled_hidden_states, rendered_ids

    model, tokenizer = tiny
    ids = rendered_ids(tokenizer, TWO_ROWS, 128)
    assert len(ids[0]) < len(ids[1])  # different lengths: the shorter one is padded in the shared batch
    assert length_batches([len(i) for i in ids], 8192, 16) == [[1, 0]]
    features = pooled_hidden_states(model, tokenizer, TWO_ROWS, max_length=128)
    assert features.shape == (2, model.config.hidden_size) and features.dtype == np.float32
    for row in range(2):
        np.testing.assert_allclose(features[row], _by_hand(model, ids[row]), atol=1e-5)
    # counting the pads (the weights over the padded width) would give the shorter example other features
    padded = ids[0] + [tokenizer.pad_token_id] * (len(ids[1]) - len(ids[0]))
    assert np.abs(_by_hand(model, padded) - features[0]).max() > 1e-3


# ---------------------------------------------------------------- selection on hand-built similarities

# pool rows x target rows: target 0 likes rows 0, 1, 3; target 1 likes rows 2, 1, 4
SCORES = np.array(
    [
        [0.90, 0.10],
        [0.80, 0.85],
        [0.10, 0.95],
        [0.70, 0.20],
        [0.30, 0.30],
    ],
    dtype=np.float32,
)


def test_round_robin_lets_each_target_row_take_its_best_remaining_example_in_turn():
    # t0 takes row 0, t1 row 2, t0 row 1, t1 would take row 1 (taken) so row 4, t0 row 3
    assert rds.round_robin(SCORES, 4).tolist() == [0, 2, 1, 4]
    assert rds.round_robin(SCORES, 5).tolist() == [0, 2, 1, 4, 3]
    assert rds.round_robin(SCORES, 99).tolist() == [0, 2, 1, 4, 3]  # never more than the pool
    assert rds.round_robin(SCORES, 0).tolist() == []


def test_max_ranks_by_the_best_cosine_to_any_target_row():
    assert rds.top_by_max(SCORES, 4).tolist() == [2, 0, 1, 3]  # row 4 is never anyone's best
    assert rds.top_by_max(SCORES, 99).tolist() == [2, 0, 1, 3, 4]


def test_ties_go_to_the_lower_pool_position():
    tied = np.array([[0.5, 0.2], [0.5, 0.2], [0.1, 0.2]], dtype=np.float32)
    assert rds.round_robin(tied, 3).tolist() == [0, 1, 2]
    assert rds.top_by_max(tied, 2).tolist() == [0, 1]


def test_several_target_files_take_turns_by_their_rows_best_cosine():
    # files: rows 0-1 of the target (columns 0, 1) and row 2 (column 2)
    scores = np.array([[0.9, 0.0, 0.1], [0.0, 0.8, 0.2], [0.1, 0.1, 0.7], [0.0, 0.0, 0.6]], dtype=np.float32)
    groups = np.array([0, 0, 1])
    per_file = rds.by_group_max(scores, groups)
    np.testing.assert_allclose(per_file, [[0.9, 0.1], [0.8, 0.2], [0.1, 0.7], [0.0, 0.6]])
    assert rds.round_robin(per_file, 3).tolist() == [0, 2, 1]  # the small file gets every other pick
    assert rds.round_robin(scores, 3).tolist() == [0, 1, 2]  # by rows, the first file would get two of three


def _angle_pool(angles: list[float], targets: list[float]) -> Pool:
    unit = lambda a: np.stack([np.cos(a), np.sin(a)], axis=1).astype(np.float32)  # noqa: E731
    n = len(angles)
    return Pool(
        row_idx=np.arange(n),
        example_ids=[f"e{i}" for i in range(n)],
        cluster_ids=np.zeros(n, dtype=int),
        cluster_weights={0: 1.0},
        hidden_states=unit(np.array(angles)),
        target_hidden_states=unit(np.array(targets)),
        target_groups=np.zeros(len(targets), dtype=int),
    )


def test_the_strategy_picks_by_cosine_with_either_aggregation():
    # two target rows at 0 and 90 degrees; pool rows near one or the other, most of them near 0
    pool = _angle_pool([0.05, 0.1, 0.15, 0.2, 1.5, 1.0], [0.0, np.pi / 2])
    rng = np.random.default_rng(0)
    round_robin = build_strategy("rds_plus", {"target": "t.jsonl"}).select(pool, 4, rng=rng)
    assert round_robin.tolist() == [0, 4, 1, 5]  # the 90-degree target gets every other pick
    best = build_strategy("rds_plus", {"target": "t.jsonl", "aggregation": "max"}).select(pool, 4, rng=rng)
    assert best.tolist() == [0, 4, 1, 2]  # by best cosine: 0.999, 0.998, 0.995, 0.989


def test_the_strategy_reads_only_hidden_states_and_says_so_when_they_were_not_loaded():
    strategy = build_strategy("rds_plus", {"target": "t.jsonl"})
    assert strategy.needs == frozenset({"hidden_states", "target_hidden_states"})
    bare = Pool(np.arange(2), ["a", "b"], np.zeros(2, dtype=int), {0: 1.0})
    with pytest.raises(MissingScores, match="'hidden_states'"):
        strategy.select(bare, 1, rng=np.random.default_rng(0))


# ---------------------------------------------------------------- the workspace: missing, computed, resumed


def test_missing_hidden_states_name_the_command_that_computes_them(workspace, capsys, tmp_path):
    store = Store(workspace)
    target = tmp_path / "t.jsonl"
    target.write_text(json.dumps({"instruction": "Bake bread.", "input": "", "output": "Knead, rise, bake."}) + "\n")
    with pytest.raises(MissingScores, match="python -m core hidden-states --dataset tiny"):
        run_selection(store, ds.get_dataset(store), build_strategy("rds_plus", {"target": str(target)}), 4)
    command = ["select", "--workspace", str(workspace), "--strategy", "rds_plus", "--budget", "4"]
    assert cli.main([*command, "--target", str(target)]) == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("error: ") and "`python -m core hidden-states --dataset tiny`" in last


class StopAt(Progress):
    """Asks to stop once ``rows`` rows are done (the cancel a job's Cancel button sets)."""

    def __init__(self, rows: int):
        super().__init__(should_stop=lambda: self.done >= rows)


def test_features_resume_after_a_cancel_and_rds_plus_selects_with_them(workspace, tiny_model_dir, target_file, capsys):
    store = Store(workspace)
    dataset = ds.get_dataset(store)
    settings = ["--workspace", str(workspace), "--model", str(tiny_model_dir), "--max-length", "96", "--precision"]
    settings.append("fp32")  # the comparison below is with a float32 pass, whatever this CPU would choose
    assert cli.main(["hidden-states", *settings, "--limit", "8"]) == 0
    out = capsys.readouterr().out
    assert "computed 8 examples" in out and "16 examples left" in out

    config = pipeline.HiddenConfig(model=str(tiny_model_dir), max_length=96, precision="fp32")
    with pytest.raises(Cancelled):  # 8 kept from the first run, then parts of 4 until 16 are done
        pipeline.compute_hidden_states(store, dataset, config, progress=StopAt(16), shard_rows=4)
    info = pipeline.pool_info(dataset, config, "fp32", dataset.n_rows)
    kept, _ = hstore.load_parts(store, info.feature_key)
    assert sorted(kept.tolist()) == list(range(16))  # every part merged before the cancel was kept
    assert pipeline.latest_pool(store, dataset.dataset_id) is None  # no half-finished set is ever used
    with pytest.raises(MissingScores, match="hidden-states"):
        run_selection(store, dataset, build_strategy("rds_plus", {"target": str(target_file)}), 4)

    assert cli.main(["hidden-states", *settings]) == 0
    out = capsys.readouterr().out
    assert "computed 8 examples" in out and "reused 16 from an earlier run" in out and "stored for rds_plus" in out
    stored = pipeline.latest_pool(store, dataset.dataset_id)
    assert stored is not None and stored.n_rows == 24 and stored.d == 32 and stored.max_length == 96
    assert not hstore.parts_folder(store, stored.feature_key).exists()
    _features_equal_one_uninterrupted_pass(store, stored, tiny_model_dir)

    command = ["select", "--workspace", str(workspace), "--strategy", "rds_plus", "--budget", "6"]
    assert cli.main([*command, "--target", str(target_file)]) == 0
    out = capsys.readouterr()
    assert "selection 1: 6 of 24 kept examples with rds_plus" in out.out, out.err
    targets = [s for s in hstore.list_sets(store, dataset.dataset_id) if s.role == "target"]
    assert [s.target_name for s in targets] == ["bread_target"] and targets[0].n_rows == 6  # cached by content

    assert cli.main(["hidden-states", *settings]) == 0
    assert "already computed" in capsys.readouterr().out


def _features_equal_one_uninterrupted_pass(store, stored, model_dir) -> None:
    from core.models.hidden import pooled_hidden_states
    from core.models.lm import load_causal_lm

    lm = load_causal_lm(str(model_dir))
    frame = pipeline.dataset_frame(store, stored.dataset_id)
    expected = pooled_hidden_states(lm.model, lm.tokenizer, frame, max_length=96)
    np.testing.assert_allclose(hstore.load_features(store, stored.feature_key), expected, atol=2e-3)  # float16


def test_the_job_computes_as_the_cli_does_and_a_second_job_continues(workspace, tiny_model_dir, tmp_path):
    from core.hidden.job import HiddenStatesJob, execute

    config = {"model": str(tiny_model_dir), "max_length": 64, "precision": "fp32"}
    first = HiddenStatesJob.from_params({"dataset": "tiny", "config": config, "limit": 20})
    first.validate(workspace)
    report = execute(workspace, first, Progress(), tmp_path)
    assert (report["computed"], report["left"], report["d"]) == (20, 4, 0)
    store = Store(workspace)
    assert pipeline.latest_pool(store, ds.get_dataset(store).dataset_id) is None
    report = execute(workspace, dataclasses.replace(first, limit=None), Progress(), tmp_path)
    assert (report["computed"], report["reused"], report["left"], report["d"]) == (4, 20, 0, 32)
    assert pipeline.latest_pool(store, ds.get_dataset(store).dataset_id) is not None
