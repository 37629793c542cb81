"""Hostile dataset text (HTML, <script>, markdown links and images, directives, math, a 200,000-character
word) stays plain text on every page that shows data: never an unescaped fragment in a markdown body or a
plotly label, and still readable somewhere (st.text, a table, an option label or escaped markdown).

The dataset, its hostile dataset name, selection name and fake runs are built by
:func:`prepare_hostile_workspace`, which the real-browser test reuses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, write_jsonl
from tests.ui.conftest import fake_run

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=2">'
LINK = "[click me](javascript:alert(1))"
IMAGE = "![tracker](http://127.0.0.1:9/x.png)"
BOLD_HTML = '<b id="injected">bold</b>'
HEADING = "# Heading"
BOLD = "**bold**"
COLOR = ":red[red]"
MATH = "$x^2$"
ICON = ":material/home: :streamlit:"
LONG_WORD = "w" * 200_000
HOSTILE = (SCRIPT, IMG, LINK, IMAGE, BOLD_HTML, HEADING, BOLD, COLOR, MATH, ICON)
# What markdown would act on, were a fragment left unescaped in a markdown body.
ACTIVE = (
    "<script",
    "<img",
    "[click me](",
    "![tracker](",
    "<b ",
    "**bold**",
    ":red[",
    "$x^2$",
    ":material/",
    "# Heading",
)

# No "/" (a dataset name may not hold one), so its tag is left open: unescaped, it would still make an element.
DATASET_NAME = 'evil [x](javascript:alert(1)) <b id="injected">name :red[r] $y$'
SELECTION_NAME = 'picked <img src=x onerror="window.__pwned=3"> [sel](javascript:alert(3))'
RUN_NAME = '<b id="injected">run</b> [r](javascript:alert(4))'
EVAL_SET = "<i>set</i>"
RUN_ERROR = "row 3 said " + SCRIPT + " " + LINK


def hostile_rows() -> list[dict[str, str]]:
    """Alpaca rows: each hostile fragment opens an instruction (so "# Heading" starts a line) and sits in an
    output; ordinary words around them let clusters and labels form."""
    rows = []
    for i, fragment in enumerate(HOSTILE):
        topic = "bread baking oven" if i % 2 else "python code function"
        rows.append(
            {
                "instruction": f"{fragment}\nExplain {topic} snake_case_word {i}",
                "input": f"{fragment} as input {i}" if i % 3 == 0 else "",
                "output": f"Answer about {topic}: {fragment}\n# Heading {i}\n- item",
            }
        )
    rows.append({"instruction": "Summarise this python function word", "input": LONG_WORD, "output": LONG_WORD})
    for i in range(6):
        topic = "bread baking oven" if i % 2 else "python code function"
        rows.append({"instruction": f"Plain question {i} about {topic}", "input": "", "output": f"Plain answer {i}."})
    return rows


def prepare_hostile_workspace(folder: Path, *, with_selection: bool = True) -> tuple[Path, Path]:
    """A workspace with the hostile dataset (hashing embedder, k=2), heuristic scores, optionally a saved
    selection with a hostile name, and two fake runs; returns (workspace, the input JSONL file)."""
    from core.prepare import PrepareOptions, prepare
    from core.score.scoring import build_scorer, score_dataset
    from core.select.run import build_strategy, run_selection, save_selection
    from core.storage import datasets as ds
    from core.storage.database import Store

    workspace = folder / "ws"
    data = write_jsonl(folder / "hostile.jsonl", hostile_rows())
    store = Store(workspace)
    prepare(store, data, PrepareOptions(name=DATASET_NAME, embedder={"name": "hashing"}, k_grid=(2,)))
    dataset = ds.get_dataset(store, DATASET_NAME)
    score_dataset(store, dataset, build_scorer("heuristics"))
    if with_selection:
        result = run_selection(store, dataset, build_strategy("random"), 5, seed=0)
        save_selection(store, dataset, result, SELECTION_NAME)
    hostile = {"name": RUN_NAME, "dataset": DATASET_NAME, "eval_set": EVAL_SET}
    fake_run(workspace, "20990101-000000-aaaaaa", **hostile)
    fake_run(workspace, "20990101-000001-bbbbbb", state="failed", error=RUN_ERROR, **hostile)
    return workspace, data


@pytest.fixture(scope="module")
def hostile_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workspace, _ = prepare_hostile_workspace(tmp_path_factory.mktemp("hostile"))
    return workspace


@pytest.fixture
def hostile_page(hostile_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], AppTest]]:
    monkeypatch.setenv("CURATE_WORKSPACE", str(hostile_workspace))
    yield lambda name: AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=60)


def markdown_bodies(at: AppTest) -> list[str]:
    """The source of everything Streamlit renders as markdown: text elements, alerts, metric and widget labels."""
    texts = [*at.markdown, *at.caption, *at.title, *at.header, *at.subheader]
    alerts = [*at.error, *at.warning, *at.info, *at.success]
    widgets = [*at.checkbox, *at.toggle, *at.selectbox, *at.multiselect, *at.text_input, *at.number_input]
    widgets += [*at.slider, *at.radio, *at.button, *at.expander, *at.metric]
    return [e.value for e in texts + alerts] + [w.label for w in widgets]


def rendered(markdown: str) -> str:
    """What an escaped markdown body reads as: backslash escapes resolved, invisible word joiners dropped."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace("\u2060", "")


def visible_texts(at: AppTest) -> list[str]:
    """Every piece of text the page shows: st.text/st.code, table cells, option labels, rendered markdown."""
    texts = [t.value for t in at.text] + [c.value for c in at.code]
    for frame in at.dataframe:
        texts += [str(value) for value in frame.value.astype(str).to_numpy().ravel()]
        texts += [str(column) for column in frame.value.columns]
    for box in [*at.selectbox, *at.multiselect]:
        texts += [str(option) for option in box.options]
    return texts + [rendered(body) for body in markdown_bodies(at)]


def plotly_specs(at: AppTest) -> list[str]:
    """Each plotly figure's JSON with escapes resolved (plotly writes "/" as \\u002f)."""
    return [json.dumps(json.loads(chart.proto.spec), ensure_ascii=False) for chart in at.get("plotly_chart")]


def unescaped(markdown: str) -> str:
    """The characters markdown would act on: each backslash-escaped pair becomes a NUL, which acts on nothing."""
    return re.sub(r"\\.", "\x00", markdown)


def assert_inert(at: AppTest) -> None:
    """No exception; no markdown body holds an active fragment; no plotly label holds raw HTML from the data."""
    assert not at.exception, [e.value for e in at.exception]
    for body in markdown_bodies(at):
        assert not any(fragment in unescaped(body) for fragment in ACTIVE), body[:300]
    for spec in plotly_specs(at):
        for raw in ("<script", "<img", "<b id", "<i>set", "<b>bold"):
            assert raw not in spec, raw


def assert_visible(at: AppTest, fragments: tuple[str, ...]) -> None:
    texts = visible_texts(at)
    for fragment in fragments:
        assert any(fragment in text for text in texts), fragment


def test_clusters_page_shows_every_example_verbatim(hostile_page) -> None:
    at = hostile_page("clusters").run()
    assert_inert(at)
    assert any(rendered(c.value).startswith(DATASET_NAME) for c in at.caption)  # the name, escaped
    cards: list[str] = []
    for cluster in at.selectbox(key="cluster_pick").options:
        at.selectbox(key="cluster_pick").select(int(cluster.split(":")[0])).run()
        if at.segmented_control(key="examples_view").value != "cards":  # every example in full
            at.segmented_control(key="examples_view").set_value("cards").run()
        assert_inert(at)
        cards += [t.value for t in at.text]
    for fragment in HOSTILE:
        assert any(card.startswith(fragment + "\n") for card in cards), fragment  # st.text: shown verbatim
    assert LONG_WORD in cards
    # the map's hover snippets go as plain strings, which its component writes with textContent (never as HTML)
    drawn = next(c for c in at.get("bidi_component") if c.proto.component_name == "curate_map")
    assert any("<script>window.__pwned=1</script>" in text for text in json.loads(drawn.proto.json)["snippets"])


def test_cluster_search_shows_hostile_rows_as_text(hostile_page) -> None:
    at = hostile_page("clusters").run()
    at.text_input(key="search").input("javascript").run()
    assert_inert(at)
    assert_visible(at, (LINK,))


def test_datasets_page_shows_the_name_escaped(hostile_page) -> None:
    at = hostile_page("datasets").run()
    assert_inert(at)
    assert rendered(at.subheader[-1].value) == f"Summary: {DATASET_NAME}"
    assert_visible(at, (DATASET_NAME,))


def _labels(workspace: Path) -> list[str]:
    from core.storage import curation
    from core.storage import datasets as ds
    from core.storage.database import Store

    store = Store(workspace)
    dataset = ds.get_dataset(store, DATASET_NAME)
    return list(curation.clusters(store, dataset.dataset_id, dataset.active_k).label)


def test_quality_page_lists_clusters_and_proposals_escaped(hostile_page, hostile_workspace, monkeypatch) -> None:
    from core.score import proposals

    monkeypatch.setattr(proposals, "FLAG_SHARE", 0.0)  # every cluster is proposed, with its reasons and rows
    at = hostile_page("quality").run()
    assert_inert(at)
    assert any(m.value.startswith("Cluster ") for m in at.markdown)
    assert_visible(at, tuple(_labels(hostile_workspace)))


def test_select_preview_and_saved_selections_stay_plain(hostile_page) -> None:
    at = hostile_page("select").run()
    at.selectbox(key="strategy").select("random").run()
    at.number_input(key="budget").set_value(4.0).run()
    at.button(key="preview").click().run()
    assert_inert(at)
    assert at.metric[0].value.startswith("4 of")
    assert_visible(at, (SELECTION_NAME,))  # the saved selections table


def test_export_page_options_errors_and_bundle(hostile_page, hostile_workspace) -> None:
    at = hostile_page("export").run()
    assert_inert(at)
    assert_visible(at, (SELECTION_NAME,))  # an option label: plain text in a selectbox
    at.text_input(key="export_path_None").input(f"../{LINK}/{BOLD_HTML}.jsonl").run()
    at.button(key="write_export").click().run()
    assert_inert(at)
    assert at.error and LINK in rendered(at.error[0].value)
    assert [json.loads(line) for line in _bundle(hostile_workspace)] == hostile_rows()  # the data untouched


def _bundle(workspace: Path) -> list[str]:
    from core.export import build_export
    from core.storage import datasets as ds
    from core.storage.database import Store

    store = Store(workspace)
    return build_export(store, ds.get_dataset(store, DATASET_NAME)).jsonl.decode().splitlines()


def test_runs_page_shows_selection_run_names_and_errors_plain(hostile_page) -> None:
    at = hostile_page("runs").run()
    assert_inert(at)
    at.radio(key="run_source").set_value("a saved selection").run()
    assert_inert(at)
    assert_visible(at, (SELECTION_NAME, RUN_NAME))
    at.selectbox(key="run_pick").select("20990101-000001-bbbbbb").run()
    assert_inert(at)
    assert RUN_ERROR in [rendered(error.value) for error in at.error]
    assert any("&lt;i&gt;set&lt;/i&gt;" in spec for spec in plotly_specs(at))  # the compare plot's labels


def test_diagnostics_and_gradient_pages_run_clean(hostile_page) -> None:
    for name in ("diagnostics", "gradients"):
        assert_inert(hostile_page(name).run())


def test_home_page_names_the_dataset_and_its_selection_plain(hostile_workspace: Path, monkeypatch) -> None:
    monkeypatch.setenv("CURATE_WORKSPACE", str(hostile_workspace))
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=60).run()  # home: the default page
    assert at.title[0].value == "Curation studio"
    assert_inert(at)
    assert_visible(at, (DATASET_NAME, SELECTION_NAME[:40]))
