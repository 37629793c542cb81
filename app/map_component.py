"""The map as a Streamlit custom component (v2): a canvas that keeps its view and listeners across reruns.

``st.plotly_chart`` gives its element an id computed from the figure, so any change of the figure (a veto
greying a cluster) makes the browser mount a new chart: 0.4-0.7 s of a GPU-less browser's main thread at any
size (docs/benchmarks.md, "browser scale"). This component is keyed by its Streamlit key alone, so a new spec
(app/map_spec.py) is drawn into the canvas already on the page. It sends back two triggers: ``click``
(``{"row", "cluster"}`` of the point under the mouse) and ``select`` (a box or lasso in map coordinates, in the
shape ``core.cluster.density.in_selection`` reads). The drawing code is ``map_component.js`` beside this file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

_HERE = Path(__file__).resolve().parent
_HTML = (
    '<div class="curate-map"><div class="bar">'
    '<button data-mode="pan" title="drag to pan, wheel to zoom, click a point to read it">Pan</button>'
    '<button data-mode="box" title="drag a box: selects every row inside it">Box</button>'
    '<button data-mode="lasso" title="draw around points: selects every row inside">Lasso</button>'
    '<button data-action="reset" title="back to the whole map (or double-click the map)">Reset view</button>'
    '<div class="legend"></div></div><canvas></canvas><div class="tip"></div></div>'
)
_MAP = st.components.v2.component(
    "curate_map",
    html=_HTML,
    css=(_HERE / "map_component.css").read_text(encoding="utf-8"),
    js=(_HERE / "map_component.js").read_text(encoding="utf-8"),
)


def show(
    spec: dict[str, Any],
    *,
    key: str,
    on_click: Callable[[], None] | None = None,
    on_select: Callable[[], None] | None = None,
) -> None:
    """Draw ``spec``; ``on_click`` and ``on_select`` run when the curator clicks a point or closes a box or lasso
    (read the value with :func:`event`). Without ``on_select`` the Box and Lasso buttons are hidden."""
    spec = spec | {"selectable": on_select is not None}
    _MAP(key=key, data=spec, on_click_change=on_click, on_select_change=on_select, height=560)


def event(key: str, name: str) -> Any:
    """The value of trigger ``name`` (``"click"`` or ``"select"``; the keyboard's ``"key"``) sent by the custom
    component under ``key`` in this run."""
    result = st.session_state.get(key)
    if result is None:
        return None
    return result.get(name) if isinstance(result, dict) else getattr(result, name, None)
