"""MinHash near-duplicate groups: which rows are grouped, which row a group keeps, and how the flag enters quality."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.score import minhash, quality
from core.score.scorers import MinHashScorer
from tests.conftest import KEYWORD_EMBEDDER, write_jsonl

STORY = (
    "The old lighthouse keeper climbed the spiral stairs every evening at dusk to light the great lamp, "
    "and from the gallery he watched the fishing boats return through the narrow channel between the rocks "
    "while gulls circled above the harbour and the bells of the town rang for the evening service."
)
RECIPE = (
    "To bake a simple loaf, mix flour, water, salt and yeast into a soft dough, knead it for ten minutes "
    "until smooth, leave it covered in a warm place for an hour, shape it, and bake it in a hot oven until the "
    "crust is brown and the base sounds hollow."
)
# the story with a word substituted and two swapped, and its case and punctuation changed
EDITED = (
    "the old lighthouse keeper climbed the spiral stairs every night at dusk to light the great lamp and from "
    "the gallery he watched the fishing boats return through the channel narrow between the rocks; while gulls "
    "circled above the harbour -- and the bells of the TOWN rang for the evening service"
)


def frame(outputs: list[str], instructions: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "instruction": instructions or ["Write a paragraph."] * len(outputs),
            "input": [""] * len(outputs),
            "output": outputs,
        }
    )


def test_a_copy_with_a_few_words_edited_is_grouped_with_its_original_and_unrelated_rows_are_not():
    values = MinHashScorer().score(frame([STORY, RECIPE, EDITED]))
    np.testing.assert_array_equal(values["minhash_group"], [0, 1, 0])
    np.testing.assert_array_equal(values["minhash_duplicate"], [0, 0, 1])
    assert 0.7 <= values["minhash_similarity"][2] < 1.0  # estimated Jaccard of the edited copy to the kept row
    assert values["minhash_similarity"][0] == values["minhash_similarity"][1] == 1.0


def test_a_stricter_threshold_leaves_the_edited_copy_alone():
    values = MinHashScorer(threshold=0.95).score(frame([STORY, RECIPE, EDITED]))
    np.testing.assert_array_equal(values["minhash_duplicate"], [0, 0, 0])


def test_identical_texts_are_grouped_at_similarity_one_and_the_first_is_kept():
    values = MinHashScorer(field="response").score(frame([RECIPE, STORY, RECIPE], ["a", "b", "c"]))
    np.testing.assert_array_equal(values["minhash_group"], [0, 1, 0])
    assert values["minhash_similarity"][2] == 1.0 and values["minhash_duplicate"][2] == 1.0


def test_rows_shorter_than_one_shingle_are_groups_of_their_own_even_when_equal():
    values = MinHashScorer(field="response").score(frame(["Paris.", "Paris.", "Four words only here", STORY]))
    np.testing.assert_array_equal(values["minhash_group"], [0, 1, 2, 3])
    assert not values["minhash_duplicate"].any()


def test_the_group_id_is_the_row_number_of_the_kept_row():
    rows = frame([STORY, EDITED, RECIPE]).assign(row_idx=[10, 11, 12])
    values = MinHashScorer().score(rows)
    np.testing.assert_array_equal(values["minhash_group"], [10, 10, 12])


@pytest.mark.parametrize(
    ("keep", "quality_values", "kept"),
    [
        ("first", None, 0),
        ("longest", None, 1),  # the edited copy with a longer response ending
        ("quality", [0.2, 0.9, 0.5], 1),
        ("quality", [np.nan, 0.1, np.nan], 1),  # a row with a quality beats one without
        ("quality", None, 0),  # no quality at all: every row ties and the first is kept
    ],
)
def test_the_keep_rule_picks_the_documented_row(keep, quality_values, kept):
    rows = frame([STORY, STORY + " And so it goes on.", EDITED])
    if quality_values is not None:
        rows = rows.assign(quality=quality_values)
    values = MinHashScorer(keep=keep).score(rows)
    assert values["minhash_group"].tolist() == [kept] * 3
    assert values["minhash_duplicate"].tolist() == [float(row != kept) for row in range(3)]


def test_the_field_decides_what_is_compared():
    rows = frame([STORY, RECIPE], instructions=[RECIPE, RECIPE])  # same instruction, different responses
    assert MinHashScorer(field="instruction").score(rows)["minhash_duplicate"].tolist() == [0, 1]
    assert MinHashScorer(field="response").score(rows)["minhash_duplicate"].tolist() == [0, 0]


def test_normalising_ignores_case_punctuation_and_spacing():
    words, rows = minhash.word_hashes(minhash.normalised_batch(["Hello,   WORLD!\n\tIt's me.", "it\x00s ME"]))
    assert rows.tolist() == [0, 0, 0, 0, 0, 1, 1, 1]  # a NUL inside a text splits a word, not the row
    assert words[2:5].tolist() == words[5:].tolist()  # "it", "s", "me"
    left, _ = minhash.shingle_hashes(["Hello, World! How are you?"], 2)
    right, _ = minhash.shingle_hashes(["hello world -- how  ARE you"], 2)
    np.testing.assert_array_equal(left, right)
    left, _ = minhash.shingle_hashes(["Ça va? Très bien… merci!"], 2)
    right, _ = minhash.shingle_hashes(["ça va très bien merci"], 2)
    np.testing.assert_array_equal(left, right)


def test_signatures_are_the_same_in_every_run_and_process():
    sig, too_short = minhash.signatures([STORY, "x"], size=5, num_perm=4)
    again, _ = minhash.signatures([STORY, "x"], size=5, num_perm=4)
    np.testing.assert_array_equal(sig, again)
    # fixed numbers: nothing seeded per process (Python's str hash) may enter a signature
    assert sig[0].tolist() == EXPECTED_STORY_SIGNATURE
    assert too_short.tolist() == [False, True]


EXPECTED_STORY_SIGNATURE = [69457157, 109118267, 147599954, 2781578]


def test_bands_times_rows_fit_the_permutations_and_catch_pairs_at_the_threshold():
    for threshold in (0.5, 0.7, 0.9):
        bands, rows = minhash.bands_for(threshold, 128)
        assert bands * rows <= 128

        def caught(similarity: float, bands: int = bands, rows: int = rows) -> float:
            return 1 - (1 - similarity**rows) ** bands

        assert caught(threshold) > 0.65 and caught(min(threshold + 0.1, 1.0)) > 0.97  # above it: almost always
        assert caught(threshold - 0.3) < 0.25  # far below it: rarely a candidate (and then not verified)


def test_the_combined_quality_penalises_the_flagged_copies_and_not_the_kept_row():
    raw = pd.DataFrame({"reward": [0.5, 0.5, 0.5], "minhash_duplicate": [0.0, 1.0, 0.0]})
    scores = quality.example_quality_from(raw)
    assert scores[0] == scores[2] == pytest.approx(0.5 + 1 / 6)  # equal rewards rank at their mean, 2/3
    assert scores[1] == pytest.approx(scores[0] * (1 - quality.DEFAULT_WEIGHTS["minhash_duplicate"]))
    off = quality.example_quality_from(raw, {**quality.DEFAULT_WEIGHTS, "minhash_duplicate": 0.0})
    assert off[1] == off[0]


def _near_duplicate_workspace(tmp_path, first_output: str):
    from core.prepare import PrepareOptions, prepare
    from core.storage.database import Store

    rows = [
        {"instruction": STORY, "input": "", "output": first_output},
        {"instruction": RECIPE, "input": "", "output": "Bread."},
        {"instruction": EDITED, "input": "", "output": "A keeper's evening."},
        {"instruction": "Name a planet.", "input": "", "output": "Mars."},
    ]
    path = write_jsonl(tmp_path / "dups.jsonl", rows)
    store = Store(tmp_path / "ws")
    prepare(store, path, PrepareOptions(name="dups", embedder=KEYWORD_EMBEDDER, k_grid=(2,), seed=0))
    return store


def test_scoring_a_dataset_stores_the_groups_and_a_second_run_is_a_cache_hit(tmp_path, monkeypatch):
    from core.score import scoring
    from core.storage import datasets as ds

    store = _near_duplicate_workspace(tmp_path, "A keeper's evening.")
    dataset = ds.get_dataset(store, "dups")
    scorer = MinHashScorer(field="instruction")
    first = scoring.score_dataset(store, dataset, scorer)
    assert (first.scored, first.cached) == (4, 0)
    raw = quality.raw_signals(store, dataset)
    assert raw.minhash_group.tolist() == [0, 1, 0, 3]
    assert raw.minhash_duplicate.tolist() == [0, 0, 1, 0]
    scores = quality.example_quality_from(raw)
    assert scores[2] < scores[0]

    monkeypatch.setattr(MinHashScorer, "score", lambda self, rows, progress=None: pytest.fail("not cached"))
    again = scoring.score_dataset(store, dataset, MinHashScorer(field="instruction"))
    assert (again.scored, again.cached) == (0, 4)


def test_keep_quality_through_scoring_keeps_the_non_empty_row_before_any_score(tmp_path):
    from core.score import scoring
    from core.storage import datasets as ds

    store = _near_duplicate_workspace(tmp_path, "   ")  # the first of the pair has an empty response
    dataset = ds.get_dataset(store, "dups")
    scoring.score_dataset(store, dataset, MinHashScorer(field="instruction", keep="quality"))
    raw = quality.raw_signals(store, dataset)
    assert raw.minhash_group.tolist() == [2, 1, 2, 3]
    assert raw.minhash_duplicate.tolist() == [1, 0, 0, 0]


def test_the_cli_scores_with_parameters_and_lists_the_groups(tmp_path, capsys):
    from core.cli import main

    _near_duplicate_workspace(tmp_path, "A keeper's evening.")
    ws = ["--workspace", str(tmp_path / "ws"), "--dataset", "dups"]
    assert main(["score", *ws, "--scorer", "minhash", "--param", "field=instruction", "--param", "keep=longest"]) == 0
    out = capsys.readouterr().out
    assert "scored 4 examples with minhash" in out
    assert "near duplicates (minhash): 1 rows flagged in 1 groups of two or more rows" in out

    assert main(["duplicates", *ws]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["group", "size", "lowest_similarity"] and table[1].split()[:2] == ["0", "2"]
    assert main(["duplicates", *ws, "--group", "0", "--json"]) == 0
    members = json.loads(capsys.readouterr().out)
    assert [(m["row_idx"], m["kept"]) for m in members] == [(0, True), (2, False)]
    assert members[1]["instruction"] == EDITED

    assert main(["score", *ws, "--scorer", "minhash", "--param", "keep=biggest"]) == 1
    assert "keep must be one of first, longest, quality" in capsys.readouterr().err
