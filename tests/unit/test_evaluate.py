"""Evaluation on a tiny randomly initialised causal LM built from a config (no download, exact checks)."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from core.errors import IngestError
from core.models import generation
from core.models import passes as lm_scores
from core.train import evaluate as ev
from tests.tiny_lm import byte_tokenizer, tiny_causal_lm


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer()


@pytest.fixture
def model(tokenizer):
    """A fresh tiny Llama per test (milliseconds), so a test that patches or re-modes it affects no other."""
    return tiny_causal_lm(tokenizer)


ROWS = [
    {
        "id": "gsm-0",
        "instruction": "Janet's ducks lay 16 eggs per day. She eats three. How much does she make at $2 an egg?",
        "output": "Janet sells 16 - 3 = 13 eggs.\nShe makes 13 * 2 = $26.\n#### 26",
        "answer": "26",
    },
    {
        "id": "gsm-1",
        "instruction": "How many bolts in total?",
        "input": "2 blue, 1 white",
        "output": "#### 3",
        "answer": "3",
    },
    {"id": "free-2", "instruction": "Name a colour.", "output": "Blue is a colour."},
    {
        "id": "gsm-3",
        "instruction": "What is 1,000 + 234?",
        "output": "1,000 + 234 = 1,234\n#### 1,234",
        "answer": "1,234",
    },
]


def _write(path, rows) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


@pytest.fixture
def eval_set(tmp_path):
    path = tmp_path / "gsm_mini.jsonl"
    _write(path, ROWS)
    return ev.load_eval_set(path)


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        (
            "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18.\n#### 18",
            "number",
            "18",
        ),
        ("#### 1,234", "number", "1234"),
        ("The total is $1,450,000.", "number", "1450000"),
        ("So she has 18.0 apples left.", "number", "18"),
        ("The temperature drops to -10 degrees.", "number", "-10"),
        ("He pays 2.50 for 3 pens, 7.5 in all.", "number", "7.5"),
        ("I am not sure how to solve this.", "number", None),
        ("The answer is (C).", "choice", "C"),
        ("answer: (c)", "choice", "C"),
        ("B) True, False", "choice", "B"),
        ("(D) 3", "choice", "D"),
        ("A", "choice", "A"),
        ("Options (A) and (B) are wrong, so the answer is D.", "choice", "D"),
        ("The answer is a prime number.", "choice", None),
        ("A cat is a mammal.", "choice", None),
        ("  Paris. ", "exact", "paris"),
    ],
)
def test_extract_answer_reads_the_final_answer_from_realistic_text(text, kind, expected):
    assert ev.extract_answer(text, kind) == expected


def test_is_correct_compares_canonical_answers():
    assert ev.is_correct("#### 1,234", "1234", "number")
    assert ev.is_correct("She ends with $18.00.", "18", "number")
    assert not ev.is_correct("#### 17", "18", "number")
    assert not ev.is_correct("no idea", "18", "number")
    assert ev.is_correct("The answer is (B).", "B", "choice")
    assert not ev.is_correct("The answer is (B).", "C", "choice")
    assert ev.is_correct("Paris.", "paris", "exact")
    with pytest.raises(ValueError, match="answer kind"):
        ev.extract_answer("18", "numeric")


def test_answer_kind_is_decided_per_set():
    assert ev.answer_kind(["A", "B", "D", None]) == "choice"
    assert ev.answer_kind(["18", "1,450,000", "-10", "2.5", None]) == "number"
    assert ev.answer_kind(["18", "Paris"]) == "exact"
    assert ev.answer_kind([None, None]) == "exact"


def test_load_eval_set_keeps_ids_answers_and_the_file_hash(tmp_path):
    path = tmp_path / "gsm_mini.jsonl"
    _write(path, ROWS)
    loaded = ev.load_eval_set(path)
    assert loaded.name == "gsm_mini" and loaded.path == path
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [row.id for row in loaded.rows] == ["gsm-0", "gsm-1", "free-2", "gsm-3"]
    assert [row.answer for row in loaded.rows] == ["26", "3", None, "1,234"]
    assert loaded.rows[1].input == "2 blue, 1 white" and loaded.rows[0].input == ""


@pytest.mark.parametrize(
    ("bad_row", "field"),
    [
        ({"instruction": "Q?", "output": "x", "answer": [26]}, "answer"),
        ({"instruction": "Q?", "output": "x", "answer": "  "}, "answer"),
        ({"instruction": "Q?", "answer": "26"}, "output"),
        ({"instruction": "Q?", "output": "x", "id": "gsm-0"}, "id"),
    ],
)
def test_a_malformed_eval_file_names_the_line_and_field(tmp_path, bad_row, field):
    path = tmp_path / "broken.jsonl"
    _write(path, [ROWS[0], bad_row])
    with pytest.raises(IngestError) as raised:
        ev.load_eval_set(path)
    assert raised.value.location == "line 2" and raised.value.field_name == field
    assert str(raised.value).startswith(f"broken.jsonl, line 2, field '{field}'")


def test_an_eval_file_without_a_usable_row_says_so_without_talking_of_storing_or_skipping(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"instruction": "Q?"}\n{oops\n', encoding="utf-8")
    with pytest.raises(IngestError) as raised:
        ev.load_eval_set(path)
    assert str(raised.value) == (
        "broken.jsonl, line 2: malformed JSON: Expecting property name enclosed in double quotes at column 2 "
        "(and 1 more bad rows; no row is usable)"
    )


def test_loss_is_the_mean_of_response_nll_computed_directly(model, tokenizer, eval_set):
    result = ev.evaluate(model, tokenizer, eval_set, max_length=200, generate=False)
    pairs = [lm_scores.render_pair(tokenizer, r.instruction, r.input, r.output, 200) for r in eval_set.rows]
    sequences = [(p.conditional, p.conditional_start, p.n_response) for p in pairs]
    direct = lm_scores.response_nll(model, sequences, pad_id=tokenizer.pad_token_id)
    assert np.isfinite(result.loss)
    assert result.loss == pytest.approx(float(np.mean(direct)), rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(result.loss))
    np.testing.assert_allclose([example["nll"] for example in result.examples], direct, rtol=1e-5)
    assert result.n == 4 and result.accuracy is None and result.n_answered == 0
    assert all(example["prediction"] is None and example["correct"] is None for example in result.examples)


def _fake_generate(tokenizer, replies: dict[str, str], seen: list):
    """A stand-in for the greedy loop's batch step (``greedy_batch``) that answers each prompt with a canned
    reply chosen by its question, ending with the stop token."""

    def generate(model, input_ids, attention_mask, max_new_tokens, stop, pad_id, should_stop=None):
        seen.append((input_ids.clone(), attention_mask.clone(), {"stop": list(stop), "pad_id": pad_id}))
        new = []
        for row in input_ids:
            prompt = tokenizer.decode(row)
            reply = next(text for question, text in replies.items() if question in prompt)
            new.append(tokenizer(reply + "<|im_end|>", add_special_tokens=False)["input_ids"])
        return new

    return generate


def test_accuracy_counts_exactly_the_rows_whose_answer_matches(model, tokenizer, eval_set, monkeypatch):
    replies = {
        "Janet": "She makes 13 * 2 = $26 a day.\n#### 26",  # right
        "bolts": "2 + 1 = 4, so #### 4",  # wrong
        "1,000 + 234": "The sum is 1234.",  # right, written without the comma
        "colour": "Blue.",  # no gold answer: must never be generated
    }
    seen: list = []
    monkeypatch.setattr(generation, "greedy_batch", _fake_generate(tokenizer, replies, seen))
    result = ev.evaluate(model, tokenizer, eval_set, max_length=200, batch_size=8)
    by_id = {example["id"]: example for example in result.examples}
    assert [by_id[i]["correct"] for i in ("gsm-0", "gsm-1", "gsm-3")] == [True, False, True]
    assert by_id["gsm-1"]["extracted"] == "4" and by_id["gsm-3"]["extracted"] == "1234"
    assert by_id["gsm-0"]["prediction"] == replies["Janet"]  # only the new tokens, special tokens dropped
    assert by_id["free-2"]["prediction"] is None and by_id["free-2"]["correct"] is None
    assert result.n_answered == 3 and result.answer_kind == "number"
    assert result.accuracy == pytest.approx(2 / 3)
    assert result.accuracy == np.mean([e["correct"] for e in result.examples if e["correct"] is not None])
    # one batch of the three answered prompts, padded on the left and ending with the generation prompt
    (input_ids, attention_mask, kwargs), *_ = seen
    assert len(seen) == 1 and input_ids.shape[0] == 3
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in kwargs["stop"]  # answers end at the turn's end
    assert kwargs["pad_id"] == tokenizer.pad_token_id
    assert bool((attention_mask[:, -1] == 1).all()) and not bool(attention_mask[:, 0].all())
    for row in input_ids:
        assert tokenizer.decode(row).endswith("<|im_start|>assistant\n")
        assert tokenizer.decode(row).replace("<pad>", "").startswith("<|im_start|>system")


def test_batched_greedy_answers_equal_one_prompt_at_a_time(model, tokenizer, eval_set):
    batched = ev.evaluate(model, tokenizer, eval_set, max_new_tokens=5, batch_size=4)
    single = ev.evaluate(model, tokenizer, eval_set, max_new_tokens=5, batch_size=1)
    assert [e["prediction"] for e in batched.examples] == [e["prediction"] for e in single.examples]
    assert batched.examples[0]["prediction"] and batched.n_answered == 3
    np.testing.assert_allclose([e["nll"] for e in batched.examples], [e["nll"] for e in single.examples], rtol=1e-5)


def test_limit_takes_the_first_rows_and_progress_counts_them(model, tokenizer, eval_set):
    done: list[int] = []
    result = ev.evaluate(model, tokenizer, eval_set, limit=3, batch_size=2, generate=False, progress=done.append)
    assert [example["id"] for example in result.examples] == ["gsm-0", "gsm-1", "free-2"]
    assert result.n == 3 and done == [2, 1]
    with pytest.raises(ValueError, match="limit"):
        ev.evaluate(model, tokenizer, eval_set, limit=-1)


def test_the_models_training_mode_is_restored(model, tokenizer, eval_set):
    model.train()
    model.model.embed_tokens.eval()  # a mixed state must come back as it was, module by module
    ev.evaluate(model, tokenizer, eval_set, limit=1, generate=False)
    assert model.training and model.model.layers[0].training and not model.model.embed_tokens.training
    model.eval()
    ev.evaluate(model, tokenizer, eval_set, limit=1, generate=False)
    assert not any(module.training for module in model.modules())


def test_a_lora_model_is_scored_with_its_adapter(model, tokenizer, eval_set):
    from peft import LoraConfig, get_peft_model

    base = ev.evaluate(model, tokenizer, eval_set, limit=2, generate=False)
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.train()
    adapted = ev.evaluate(lora, tokenizer, eval_set, limit=2, max_new_tokens=2)
    assert adapted.loss != pytest.approx(base.loss, rel=1e-6)  # the adapter changes the losses
    with lora.disable_adapter():
        assert ev.evaluate(lora, tokenizer, eval_set, limit=2, generate=False).loss == pytest.approx(base.loss)
    assert adapted.n_answered == 2 and lora.training


def test_summary_is_json_without_examples_and_eval_key_is_stable(eval_set):
    result = ev.EvalResult("gsm_mini", eval_set.sha256, 1, 1.5, math.exp(1.5), None, 0, "number", 0.1, [{"id": "a"}])
    summary = result.summary()
    assert "examples" not in summary and json.loads(json.dumps(summary))["loss"] == 1.5
    key = ev.eval_key("SmolLM2-135M-Instruct", None, eval_set, {"max_length": 512, "limit": 100})
    assert key == ev.eval_key("SmolLM2-135M-Instruct", None, eval_set, {"limit": 100, "max_length": 512})
    assert key != ev.eval_key("SmolLM2-135M-Instruct", "abc123", eval_set, {"max_length": 512, "limit": 100})
    assert key != ev.eval_key("SmolLM2-135M-Instruct", None, eval_set, {"max_length": 512, "limit": 50})
