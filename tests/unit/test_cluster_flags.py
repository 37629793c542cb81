"""A cluster's main defect in the cluster table: the flag on most of its rows, named when it covers enough."""

from __future__ import annotations


def test_a_cluster_is_named_by_its_main_defect_only_when_it_covers_enough_rows() -> None:
    import numpy as np
    import pandas as pd

    from app.queries import _main_flags

    clusters = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    raw = pd.DataFrame(
        {
            "cut_off_response": [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            "exact_duplicate": [0, 0, 0, 0, 1, 0, 0, 0, 0, np.nan],
        },
        dtype=float,
    )
    sizes = np.bincount(clusters).astype(float)
    named = _main_flags(raw, ["cut_off_response", "exact_duplicate"], clusters, sizes)
    assert list(named) == ["50% cut off response", ""]  # 1 in 6 duplicates is below the 30 % bar
