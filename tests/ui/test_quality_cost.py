"""The Quality page states the cost of LM scoring before the Score button, from the measured rates."""

from __future__ import annotations


def test_choosing_an_lm_scorer_states_its_cost_and_a_limit_lowers_it(page) -> None:
    at = page("quality").run()
    at.selectbox(key="scorer").select("ifd").run()
    whole = [m.value for m in at.info if "with ifd takes about" in m.value]
    assert len(whole) == 1 and whole[0].startswith("Scoring ")
    at.number_input(key="score_limit").set_value(2).run()
    assert any(m.value.startswith("Scoring 2 examples with ifd takes about 1 s") for m in at.info)
    at.selectbox(key="scorer").select("heuristics").run()
    assert not [m for m in at.info if "takes about" in m.value]  # not an LM: nothing to state
