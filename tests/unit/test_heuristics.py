"""The heuristic flags on the kinds of text that used to misfire: complete code, short answers, templated
problems. Each case is a response a curator would recognise; none needs a model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.score import heuristics, scorers

COMPLETE_FUNCTION = '''def count_vowels(text):
    """How many vowels the text has."""
    total = 0
    for char in text.lower():
        if char in "aeiou":
            total += 1
    return total'''

PROSE = (
    "A thermostat keeps the engine at its working temperature. When the engine is cold it stays shut, so the "
    "coolant circulates only through the block and the engine warms up quickly. Once the coolant reaches about "
    "ninety degrees the valve opens and lets it flow to the radiator, where it gives off its heat."
)


@pytest.mark.parametrize(
    "response",
    [
        COMPLETE_FUNCTION,
        "    seen = set()\n    return [x for x in items if not (x in seen or seen.add(x))]",  # a body, as HumanEval
        "def word_len(s): \r\n    for word in s.split(' '): \r\n        if len(word)%2!=0: \r\n            return True",
        "SELECT name, SUM(total) AS spent\nFROM orders\nGROUP BY name\nORDER BY spent DESC;",
        "function add(a, b) {\n  return a + b;\n}",
        '#!/bin/bash\necho "Files here:"\nls',
    ],
)
def test_complete_code_is_not_cut_off(response):
    assert not scorers.looks_cut_off(response)


@pytest.mark.parametrize(
    ("prompt", "response"),
    [
        (
            "Sort the following words alphabetically: List: pear cherry apple banana fig date",
            "apple banana cherry date fig pear",
        ),
        ("", "apple banana cherry date elderberry fig grape"),  # sorted words, even without the prompt
        ("Is the review positive or negative? Review: a tender, funny film", "positive"),
        ("Janet has 3 apples and buys 4 more. How many does she have?", "She has 3 + 4 = <<3+4=7>>7 apples\n#### 7"),
        ("Write a headline for this article.", "Local Team Wins Regional Cup After Late Goal in Extra Time"),
        ("List three fruits.", "- apple\n- banana\n- a ripe cherry"),
        (
            "Write a short poem about rain.",
            "Rain on the roof\nsoft and slow\nwashing the street\nwhere the children go",
        ),
    ],
)
def test_short_answers_lists_and_line_based_text_are_not_cut_off(prompt, response):
    assert not scorers.looks_cut_off(response, prompt)


def test_prose_chopped_mid_sentence_is_cut_off_however_it_stops():
    words = PROSE.split()
    for size in (12, 20, 30, 41):  # on a word, then the same chopped mid-word
        head = " ".join(words[:size]).rstrip(".,")
        assert scorers.looks_cut_off(head, "What does a thermostat do in a car?"), head
        assert scorers.looks_cut_off(head[:-2], "What does a thermostat do in a car?"), head[:-2]
    assert not scorers.looks_cut_off(PROSE, "What does a thermostat do in a car?")


@pytest.mark.parametrize(
    "response",
    [
        "Here is the function:\n```python\ndef add(a, b):\n    return a",  # a code block never closed
        "def area(width, height):\n    return (width *",  # an open bracket
        "def gcd(x, y):",  # a block with no body
        "def is_even(n):\n    total = n % 2\n    if total == 0",  # a statement cut in its block
        "#include <iostream>\nint main() {\n    int total = 0;\n    total = total",  # C without its ; or }
        "Pack for the trip:\n- Bring a warm coat.\n- Pack two pairs of boots.\n- Take a map of the",
        "The steps are as follows:",  # a promised list that never came
        "Preheat the oven and",
    ],
)
def test_open_code_and_dangling_endings_are_cut_off(response):
    assert scorers.looks_cut_off(response)


def _frame(rows: list[tuple[str, str]], embeddings: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "instruction": [instruction for instruction, _ in rows],
            "input": [""] * len(rows),
            "output": [output for _, output in rows],
            "embedding": list(embeddings),
        }
    )


def _close_vectors(n: int) -> np.ndarray:
    """``n`` unit vectors with pairwise cosine about 0.995: what an embedder gives rows sharing a template."""
    rng = np.random.default_rng(0)
    base = np.zeros(16, dtype=np.float32)
    base[0] = 1.0
    vectors = base + 0.05 * rng.standard_normal((n, 16)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_templated_problems_with_different_answers_are_not_near_duplicates():
    rows = [
        (
            f"Tom has {a} marbles and wins {b} more. How many marbles does he have now?",
            f"Tom starts with {a} marbles and wins {b}, so he has {a} + {b} = {a + b} marbles.\n#### {a + b}",
        )
        for a, b in [(12, 5), (14, 3), (21, 8), (9, 16)]
    ]
    embeddings = _close_vectors(len(rows))
    assert (embeddings @ embeddings.T).min() > 0.95  # the embeddings alone would call them all duplicates
    result = scorers.HeuristicsScorer(near_duplicate_threshold=0.95).score(_frame(rows, embeddings))
    np.testing.assert_array_equal(result["near_duplicate"], [0, 0, 0, 0])


def test_a_repeated_example_with_a_small_variation_is_a_near_duplicate():
    answer = "Paris is the capital of France, and it is also the country's largest city by population."
    rows = [
        ("What is the capital of France?", answer),
        ("What's the capital of France?", answer.replace(", and", " and")),  # the repeat, lightly edited
        ("What is the capital of Spain?", "Madrid is the capital of Spain, and its largest city as well."),
        ("Name the capital of France.", "Paris"),  # same answer as row 0, but a short one in other words
    ]
    result = scorers.HeuristicsScorer(near_duplicate_threshold=0.95).score(_frame(rows, _close_vectors(4)))
    np.testing.assert_array_equal(result["near_duplicate"], [1, 1, 0, 0])


def test_short_equal_answers_are_near_duplicates_only_with_nearly_the_same_prompt():
    rows = [
        ("Is this review positive or negative? Review: The plot drags and the jokes fall flat.", "negative"),
        ("Is this review positive or negative? Review: Two hours I will never get back.", "negative"),
        ("Is this review positive or negative? Review: The plot drags and the jokes fall flat!", "negative"),
    ]
    result = scorers.HeuristicsScorer(near_duplicate_threshold=0.95).score(_frame(rows, _close_vectors(3)))
    np.testing.assert_array_equal(result["near_duplicate"], [1, 0, 1])


def test_changing_the_flag_rules_changes_the_score_key(monkeypatch):
    before = scorers.HeuristicsScorer().score_key()
    assert "rules=" in before
    monkeypatch.setattr(scorers.HeuristicsScorer, "rules", scorers.HeuristicsScorer.rules + 1)
    assert scorers.HeuristicsScorer().score_key() != before  # scores cached under the old rules are not reused


def test_the_same_rationale_ending_in_a_different_answer_is_not_a_near_duplicate():
    rationale = "The broadcaster is publicly funded and its news service reaches every province of the country."
    rows = [
        ("Is the following claim true? The broadcaster airs state news.", f"{rationale} So the answer is yes."),
        ("Is the following claim true? The broadcaster airs foreign news.", f"{rationale} So the answer is no."),
    ]
    result = scorers.HeuristicsScorer(near_duplicate_threshold=0.95).score(_frame(rows, _close_vectors(2)))
    np.testing.assert_array_equal(result["near_duplicate"], [0, 0])


@pytest.mark.parametrize(
    "text",
    [
        "wazjk troku greq kozz blorf quex snimfrex drylp.",
        "Th qck brwn fx jmps vr th lzy dg.",
        "bnnl skag wort besk viskglezz skoxxog plaskplem quex lto beg grug ixyd kuq.",
    ],
)
def test_text_in_no_language_is_gibberish(text):
    assert heuristics.looks_gibberish(text)


@pytest.mark.parametrize(
    "text",
    [
        "Paris.",  # short answers are not judged
        "The capital of France is Paris, and it is also its largest city.",
        "Db major has 5 flats: Bb, Eb, Ab, Db, Gb.",  # notes, units and initials
        "Multiply every quantity by 2:\n- 400 g flour\n- 4 eggs\n- 600 ml milk\n- 2 tbsp sugar\n- 4 tsp baking powder",
        "def fizz(n):\n    return [str(i) for i in range(n) if i % 3]",  # code
        "x = 12 * 7\ny = x - 5\nprint(y)",
        "48 / 6 = 8, so each friend gets 8 apples.\n#### 8",  # maths
        "Le chat est sur la table et il dort dans le soleil.",  # another language
        "Der Hund ist nicht im Garten, er schläft auf dem Sofa.",
        "这是一个测试句子，用来检查其他文字。",  # another script
        "See https://www.example.com/xq7z/kdjfh/qwrtz for the full schedule of the event.",  # a link
    ],
)
def test_prose_short_answers_code_maths_and_other_languages_are_not_gibberish(text):
    assert not heuristics.looks_gibberish(text)


def test_gibberish_is_judged_in_linear_time_on_a_long_word():
    import time

    started = time.perf_counter()
    for text in ("w" * 200_000, "x" * 100_000 + " https://" + "y" * 100_000, "ab " * 100_000):
        heuristics.looks_gibberish(text)
    assert time.perf_counter() - started < 2  # a regex that backtracks over the word took minutes
