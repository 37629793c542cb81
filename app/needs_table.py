"""The "What this needs" table: before a selection or a run is launched, the inputs a strategy reads, which are
missing, and how long computing them would take on this machine (core/select/needs.py). Select and Runs show it."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from app.state import store
from app.text import plain
from core.select import needs
from core.select.run import build_strategy
from core.storage.datasets import DatasetInfo


@st.cache_data(max_entries=32, show_spinner=False)
def _requirements(workspace: str, version: int, dataset_id: int, name: str, params: str) -> list[needs.Requirement]:
    """Once per data version and strategy settings: the checks read scores, gradient sets and target files."""
    from core.storage import datasets as ds

    dataset = ds.get_dataset(store(), dataset_id)
    return needs.requirements(store(), dataset, build_strategy(name, json.loads(params)))


def needs_table(dataset: DatasetInfo, name: str, params: dict[str, Any], budget: float) -> None:
    """The requirements as a small table (need, present or missing, estimated time, where the estimate comes
    from), the strategy's own time as its last row, and a caption naming what is missing with its estimate."""
    try:
        found = _requirements(
            str(store().workspace), store().versions().total, dataset.dataset_id, name, json.dumps(params, default=str)
        )
    except (ValueError, TypeError):  # a parameter the form has not settled yet: Preview will say what is wrong
        return
    own, source = needs.strategy_estimate(name, dataset.n_rows, budget, int(str(params.get("candidates") or 0)))
    rows = [
        {
            "needs": req.what,
            "state": "present" if req.present else "missing",
            "estimated time": req.estimate() or ("" if req.present else "-"),
            "estimate from": req.source,
            "note": req.note,
        }
        for req in found
    ]
    if own is not None:
        rows.append(
            {
                "needs": "the selection itself",
                "state": "",
                "estimated time": needs.about(own),
                "estimate from": source,
                "note": "",
            }
        )
    todo = needs.missing(found)
    told = "; ".join(f"{req.need}: {req.estimate() or req.note or 'missing'}" for req in todo)
    st.caption(plain(f"What this needs: missing {told}.") if todo else "What this needs: every input is present.")
    # a static table (its cells are not markdown), not a data frame: the pages' data frames (the preview, the
    # saved selections) keep their places
    st.table(pd.DataFrame(rows), hide_index=True)
