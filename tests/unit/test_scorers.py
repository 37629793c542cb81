"""Scorers on a tiny randomly initialised causal LM built from a config (no download, exact checks)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.models import lm as lm_module
from core.models import passes as lm_scores
from core.score import scorers
from tests.tiny_lm import byte_tokenizer, tiny_causal_lm


@pytest.fixture(scope="module")
def tiny_lm():
    tokenizer = byte_tokenizer()
    return lm_module.LoadedLM(tiny_causal_lm(tokenizer), tokenizer, "tiny", "cpu", "float32")


@pytest.fixture
def use_tiny(tiny_lm, monkeypatch):
    calls = []

    def fake_load(model="tiny", device=None):
        calls.append(model)
        return tiny_lm

    monkeypatch.setattr(lm_module, "load_causal_lm", fake_load)
    return calls


EXAMPLES = pd.DataFrame(
    {
        "instruction": ["Add two and two.", "Name a colour.", "Say hi"],
        "input": ["", "", "politely"],
        "output": ["Four.", "Blue is a colour.", ""],
    }
)


def _reference_nll(model, ids: list[int], start: int, n: int) -> float:
    """Mean NLL of ids[start:start+n] from one unbatched forward pass with full logits."""
    import torch

    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    log_probs = torch.log_softmax(logits, dim=-1)
    return float(-np.mean([log_probs[p - 1, ids[p]].item() for p in range(start, start + n)]))


def test_mask_covers_exactly_the_response_tokens(tiny_lm):
    pair = lm_scores.render_pair(tiny_lm.tokenizer, "Add two and two.", "", "Four.", max_length=200)
    response = tiny_lm.tokenizer.decode(pair.conditional[pair.conditional_start :])
    assert response == "Four.<|im_end|>\n"
    alone = tiny_lm.tokenizer.decode(pair.unconditional[pair.unconditional_start :])
    assert alone == response
    assert tiny_lm.tokenizer.decode(pair.unconditional[: pair.unconditional_start]).endswith("assistant\n")
    assert pair.n_response == len(tiny_lm.tokenizer("Four.<|im_end|>\n")["input_ids"]) and not pair.truncated


def test_truncation_is_recorded_and_keeps_the_same_span_in_both_passes(tiny_lm):
    pair = lm_scores.render_pair(tiny_lm.tokenizer, "q" * 30, "", "a" * 300, max_length=100)
    assert pair.truncated
    assert len(pair.conditional) == 100
    assert pair.conditional[pair.conditional_start :] == pair.unconditional[pair.unconditional_start :]


def test_ifd_equals_exp_of_the_mean_nll_difference_computed_by_hand(tiny_lm, use_tiny):
    result = scorers.IFDScorer(model="tiny", max_length=200, precision="fp32", template="chat").score(EXAMPLES)
    answered = [0, 1]  # row 2's response is empty: no IFD at all (test_empty_responses_get_no_lm_score)
    for row in answered:
        instruction, input_text, output = EXAMPLES.iloc[row]
        pair = lm_scores.render_pair(tiny_lm.tokenizer, instruction, input_text, output, 200)
        conditional = _reference_nll(tiny_lm.model, pair.conditional, pair.conditional_start, pair.n_response)
        alone = _reference_nll(tiny_lm.model, pair.unconditional, pair.unconditional_start, pair.n_response)
        assert result["ifd"][row] == pytest.approx(np.exp(conditional - alone), rel=1e-4)
        assert result["perplexity"][row] == pytest.approx(np.exp(conditional), rel=1e-4)
    flags = result["instruction_does_not_help"]
    assert set(np.unique(flags[answered])) <= {0.0, 1.0}
    np.testing.assert_array_equal(flags[answered], (result["ifd"][answered] >= 1).astype(float))
    assert np.isnan(flags[2])


def test_empty_responses_get_no_lm_score_and_never_reach_the_model(use_tiny):
    for scorer in (scorers.IFDScorer(model="tiny", precision="fp32"), scorers.PerplexityScorer(model="tiny")):
        result = scorer.score(EXAMPLES.assign(output=["Four.", "  \n\t", ""]))
        assert np.isfinite(result["perplexity"][0]) and np.isnan(result["perplexity"][1:]).all()
        if "ifd" in result:
            assert np.isfinite(result["ifd"][0]) and np.isnan(result["ifd"][1:]).all()
    use_tiny.clear()
    done = []
    result = scorers.IFDScorer(model="tiny").score(EXAMPLES.assign(output=["", " ", "\n"]), progress=done.append)
    assert np.isnan(result["ifd"]).all() and sum(done) == 3
    assert use_tiny == []  # only empty responses: the model is not even loaded


def test_batched_losses_equal_one_example_per_pass(tiny_lm):
    pairs = [lm_scores.render_pair(tiny_lm.tokenizer, i, x, o, 200) for i, x, o in EXAMPLES.itertuples(index=False)]
    sequences = [(p.conditional, p.conditional_start, p.n_response) for p in pairs]
    batched = lm_scores.response_nll(tiny_lm.model, sequences, pad_id=tiny_lm.tokenizer.pad_token_id)
    single = [lm_scores.response_nll(tiny_lm.model, [s], pad_id=tiny_lm.tokenizer.pad_token_id)[0] for s in sequences]
    np.testing.assert_allclose(batched, single, rtol=1e-4)


def test_the_shared_system_turn_runs_once_and_gives_the_same_losses(tiny_lm):
    pairs = [lm_scores.render_pair(tiny_lm.tokenizer, i, x, o, 200) for i, x, o in EXAMPLES.itertuples(index=False)]
    sequences = [(p.conditional, p.conditional_start, p.n_response) for p in pairs]
    sequences += [(p.unconditional, p.unconditional_start, p.n_response) for p in pairs]
    prefix = lm_scores.shared_prefix(sequences)
    assert tiny_lm.tokenizer.decode(prefix) == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>"
    pad = tiny_lm.tokenizer.pad_token_id
    shared = lm_scores.response_nll(tiny_lm.model, sequences, pad_id=pad)
    plain = lm_scores.response_nll(tiny_lm.model, sequences, pad_id=pad, share_prefix=False)
    np.testing.assert_allclose(shared, plain, rtol=1e-5)
    reference = [_reference_nll(tiny_lm.model, *s) if s[2] else np.nan for s in sequences]
    np.testing.assert_allclose(shared, reference, rtol=1e-4)


def test_bf16_autocast_stays_close_to_float32_and_is_keyed_apart(tiny_lm, use_tiny):
    fp32 = scorers.IFDScorer(model="tiny", precision="fp32")
    bf16 = scorers.IFDScorer(model="tiny", precision="bf16")
    assert fp32.score_key() != bf16.score_key()
    assert '"precision": "bf16"' in bf16.score_key()
    np.testing.assert_allclose(bf16.score(EXAMPLES)["perplexity"], fp32.score(EXAMPLES)["perplexity"], rtol=0.05)
    with pytest.raises(ValueError, match="precision"):
        scorers.IFDScorer(model="tiny", precision="fp16").score(EXAMPLES)


def test_loss_ratio_form_and_perplexity_scorer(use_tiny):
    ratio = scorers.IFDScorer(model="tiny", form="loss_ratio", precision="fp32").score(EXAMPLES)
    ppl = scorers.PerplexityScorer(model="tiny", precision="fp32", template="alpaca").score(EXAMPLES)
    np.testing.assert_allclose(ppl["perplexity"], ratio["perplexity"], rtol=1e-6)
    assert np.all(np.isfinite(ratio["ifd"][:2])) and np.isnan(ratio["ifd"][2])  # row 2's response is empty
    with pytest.raises(ValueError, match="ppl_ratio or loss_ratio"):
        scorers.IFDScorer(model="tiny", form="other").score(EXAMPLES)


def test_tfidf_diversity_is_the_row_sum_of_l2_normalised_tfidf():
    frame = pd.DataFrame(
        {"instruction": ["a"] * 3, "input": [""] * 3, "output": ["red apple", "red apple", "green pear tree"]}
    )
    sums = scorers.TfidfDiversityScorer().score(frame)["tfidf_diversity"]
    # "red apple": 3 n-grams, each weight 1/sqrt(3) after L2 normalisation -> row sum sqrt(3)
    assert sums[0] == pytest.approx(np.sqrt(3)) and sums[1] == pytest.approx(np.sqrt(3))
    assert sums[2] == pytest.approx(np.sqrt(6))  # 6 distinct n-grams, all equally rare


def test_score_keys_name_the_model_and_parameters():
    assert scorers.IFDScorer().score_key() == scorers.IFDScorer(model="HuggingFaceTB/SmolLM2-135M-Instruct").score_key()
    assert scorers.IFDScorer().score_key() != scorers.IFDScorer(max_length=256).score_key()
    assert scorers.SCORERS.names() == [
        "heuristics",
        "ifd",
        "judge",
        "minhash",
        "perplexity",
        "reward",
        "tfidf_diversity",
    ]


def test_scoring_a_dataset_is_cached_resumable_and_summarised_per_cluster(workspace, use_tiny, monkeypatch):
    from core.score import scoring
    from core.storage import datasets as ds
    from core.storage.database import Store

    store = Store(workspace)
    dataset = ds.get_dataset(store)
    scorer = scorers.IFDScorer(model="tiny", max_length=128)
    first = scoring.score_dataset(store, dataset, scorer, limit=10, chunk=4)
    assert (first.scored, first.cached) == (10, 0)
    second = scoring.score_dataset(store, dataset, scorer, chunk=4)
    assert (second.scored, second.cached) == (dataset.n_rows - 10, 10)

    calls = []
    monkeypatch.setattr(scorers.IFDScorer, "score", lambda self, frame, progress=None: calls.append(len(frame)))
    third = scoring.score_dataset(store, dataset, scorer)
    assert (third.scored, third.cached, calls) == (0, dataset.n_rows, [])  # a cache hit runs no forward pass

    summary = scoring.cluster_summary(store, dataset)
    assert list(summary.scored) == list(summary["size"])
    assert {"ifd_mean", "ifd_std", "perplexity_mean"} <= set(summary.columns)


def test_heuristics_flag_empty_cut_off_and_near_duplicate_responses():
    unit = np.eye(3, dtype=np.float32)
    close = unit[0] * 0.99 + unit[1] * 0.141  # cosine 0.99 with row 0
    frame = pd.DataFrame(
        {
            "instruction": ["a", "b", "c", "d"],
            "input": [""] * 4,
            "output": ["", "The main reason the engine overheats is that the", "Paris", "It is 4."],
            "embedding": [unit[0], close / np.linalg.norm(close), unit[1], unit[2]],
        }
    )
    result = scorers.HeuristicsScorer(near_duplicate_threshold=0.95).score(frame)
    np.testing.assert_array_equal(result["empty_response"], [1, 0, 0, 0])
    np.testing.assert_array_equal(result["cut_off_response"], [0, 1, 0, 0])  # short answers are not cut off
    # rows 0 and 1 are embedding neighbours with different responses: not a repeat (tests/unit/test_heuristics.py)
    np.testing.assert_array_equal(result["near_duplicate"], [0, 0, 0, 0])
    np.testing.assert_array_equal(result["response_length"], [0, 9, 1, 4])


def test_heuristics_through_scoring_use_the_dataset_embeddings(workspace):
    from core.score import scoring
    from core.storage import datasets as ds
    from core.storage.database import Store

    store = Store(workspace)
    dataset = ds.get_dataset(store)
    report = scoring.score_dataset(store, dataset, scorers.HeuristicsScorer(near_duplicate_threshold=0.99))
    assert report.scored == dataset.n_rows
    summary = scoring.cluster_summary(store, dataset)
    # the keyword embedder gives every text of a topic (almost) the same vector, so all are embedding
    # neighbours; the flag is computed (it needs the embeddings) but none is a repeat: the rows are numbered
    # variants of one template with answers that differ in their number
    assert list(summary.near_duplicate_mean) == [0.0] * len(summary)


@pytest.fixture(scope="module")
def tiny_reward_model(tmp_path_factory):
    """A tiny random BERT sequence classifier with a word-piece vocabulary, saved to a folder."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("reward")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "add", "two", "and", "four", ".", "name", "a", "blue"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    return str(folder)


def test_reward_scorer_scores_each_pair_with_the_model_given_by_path(tiny_reward_model):
    frame = pd.concat([EXAMPLES, EXAMPLES.iloc[[0]]], ignore_index=True)
    rewards = scorers.RewardScorer(model=tiny_reward_model, batch_size=2).score(frame)["reward"]
    assert rewards.shape == (4,) and np.all(np.isfinite(rewards))
    assert rewards[3] == pytest.approx(rewards[0], abs=1e-5)  # the same pair, in another batch
    assert len(set(np.round(rewards[:3], 5))) == 3
    with pytest.raises(ValueError, match="needs a reward model"):
        scorers.RewardScorer().score(frame)


def test_the_in_memory_ifd_of_the_iterit_loop_leaves_empty_responses_unscored_too(tiny_lm, use_tiny):
    loop_ifd = lm_scores.ifd_scores(tiny_lm.model, tiny_lm.tokenizer, EXAMPLES, max_length=200)
    scorer = scorers.IFDScorer(model="tiny", max_length=200, precision="fp32", template="chat")  # the loop's rendering
    scorer_ifd = scorer.score(EXAMPLES)["ifd"]
    np.testing.assert_allclose(loop_ifd, scorer_ifd, rtol=1e-4)  # NaN in the same place: the empty row 2
    assert np.isnan(loop_ifd[2]) and np.isfinite(loop_ifd[:2]).all()


def test_a_score_job_names_a_stage_from_the_start_and_heuristics_move_the_count_as_they_go(workspace, monkeypatch):
    from core.progress import Progress
    from core.score import scoring
    from core.storage import datasets as ds
    from core.storage.database import Store

    class Recorder(Progress):
        def __init__(self):
            super().__init__()
            self.seen = []

        def update(self):
            self.seen.append((self.stage, self.done, self.total))

    monkeypatch.setattr(scorers, "PROGRESS_ROWS", 10)
    store = Store(workspace)
    dataset = ds.get_dataset(store)
    recorder = Recorder()
    scoring.score_dataset(store, dataset, scorers.HeuristicsScorer(), progress=recorder)
    assert recorder.seen[0] == ("find unscored examples", 0, 1)  # never a bare "0/0" while rows are looked up
    counts = [(done, total) for stage, done, total in recorder.seen if stage == "score heuristics"]
    assert counts == [(0, 24), (10, 24), (20, 24), (24, 24), (24, 24)]  # within the one set-dependent call


def test_heuristics_flag_gibberish_in_the_response_or_the_prompt():
    frame = pd.DataFrame(
        {
            "instruction": ["Name a fruit.", "fryqglim xab xab znm dryrf yahty kix.", "Name a colour."],
            "input": [""] * 3,
            "output": ["An apple is a fruit.", "Red.", "wazjk troku greq kozz blorf quex snimfrex."],
        }
    )
    np.testing.assert_array_equal(scorers.HeuristicsScorer().score(frame)["gibberish"], [0, 1, 1])
