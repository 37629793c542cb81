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


def test_a_run_past_an_hour_starts_only_once_the_curator_ticks_that_it_may(page, monkeypatch) -> None:
    from core.score import cost

    monkeypatch.setattr(cost, "CONFIRM_SECONDS", 0.5)  # the fixture's dataset is small: any LM run is "long"
    at = page("quality").run()
    at.selectbox(key="scorer").select("ifd").run()
    assert any("score a stratified sample instead" in m.value for m in at.warning)
    assert at.button(key="start_score").disabled
    tick = [box for box in at.checkbox if box.label.startswith("Start it anyway: about")]
    assert len(tick) == 1
    tick[0].check().run()
    assert not at.button(key="start_score").disabled
    at.selectbox(key="scorer").select("heuristics").run()  # no model: no cost, no tick
    assert not at.button(key="start_score").disabled and not [b for b in at.checkbox if "anyway" in b.label]
