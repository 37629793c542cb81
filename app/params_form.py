"""One generated form for any registered plugin's parameters: strategies, loops, scorers, embedders, ...

Each :class:`core.registry.Param` of the plugin becomes one widget by its kind: choices a selectbox, bool
a checkbox, int and float a number input within its bounds, str a text input (left blank, an optional
one means none). Widget keys are ``<prefix>_<plugin>_<param>``, so two plugins' fields never share
state, and labels are the parameter names the CLI and job files use. A loop's ``run_fields`` (budget,
rounds, seed) are the run's own settings: the registry leaves them out, and the page asks for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from core.registry import Param, Registry

# A page's own widget for one parameter (e.g. the target-file picker), given the widget key.
CustomWidget = Callable[[str], Any]


def params_form(
    registry: Registry[Any],
    name: str,
    key_prefix: str,
    *,
    columns: int = 4,
    custom: dict[str, CustomWidget] | None = None,
) -> dict[str, Any]:
    """Render the parameters of plugin ``name`` of ``registry`` in up to ``columns`` columns; their values."""
    params = registry.params(name)  # a loop's run_fields (budget, rounds, seed) are the page's own widgets
    if not params:
        return {}
    cols = st.columns(min(len(params), columns))
    values = {}
    for index, param in enumerate(params):
        key = f"{key_prefix}_{name}_{param.name}"
        widget = (custom or {}).get(param.name)
        with cols[index % len(cols)]:
            values[param.name] = widget(key) if widget else param_input(param, key)
    return values


def param_input(param: Param, key: str) -> Any:
    """One parameter's widget; returns its value in the parameter's type."""
    help_text = param.help or None
    if param.choices:
        index = param.choices.index(param.default) if param.default in param.choices else 0
        return st.selectbox(param.name, param.choices, index=index, key=key, help=help_text)
    if param.kind is bool:
        return st.checkbox(param.name, value=bool(param.default), key=key, help=help_text)
    if param.kind in (int, float):
        return _number_input(param, key, help_text)
    text = st.text_input(param.name, value="" if param.default is None else str(param.default), key=key, help=help_text)
    return None if param.optional and not text.strip() else text


def _number_input(param: Param, key: str, help_text: str | None) -> int | float:
    kind = param.kind
    low = None if param.low is None else kind(param.low)
    high = None if param.high is None else kind(param.high)
    if kind is int:
        value = int(param.default or 0)
        return st.number_input(param.name, value=value, step=1, min_value=low, max_value=high, key=key, help=help_text)
    # %g: a density of 1/16 shows as 0.0625, not rounded to the step's three decimals
    value = float(param.default or 0.0)
    return st.number_input(
        param.name, value=value, step=0.05, format="%g", min_value=low, max_value=high, key=key, help=help_text
    )


def engine_choice(key_prefix: str) -> dict[str, Any] | None:
    """Where a job's model stage runs: a pick among the registered engines, and the chosen one's own
    parameters in the generic form; the job's ``engine`` spec (None: the job's own process)."""
    from core.engines import ENGINES
    from core.registry import changed_values

    names = ENGINES.names()
    name = st.selectbox(
        "Run the model on",
        names,
        index=names.index("local"),
        format_func=ENGINES.title,
        key=f"{key_prefix}_engine",
        help="local: the job's own process, on this machine's GPU or CPU. Ray: a Ray Data pipeline on a cluster "
        "(address `local` starts one on this machine; `auto` or HOST:PORT joins one), its progress counted in "
        "finished shards.",
    )
    if name == "local":
        return None
    with st.expander("Ray settings"):
        values = params_form(ENGINES, name, key_prefix, columns=3)
    return {"name": name, **changed_values(ENGINES.params(name), values)}
