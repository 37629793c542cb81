"""The Python API for notebooks and scripts: ``from core import Workspace``.

One facade over the same core functions the CLI and the pages call, so a notebook's decisions, scores,
selections, runs and exports are the workspace's own: the app shows them, the CLI lists them, the history
records them (as actor ``api``). Open a :class:`Workspace`, prepare or open a :class:`Dataset`, then curate
it; tables come back as pandas frames, long work shows a tqdm bar and can be interrupted (what was
committed stays, and the next call resumes). docs/python-api.md walks through it end to end.

Only the names in ``__all__`` are public; the rest of ``core`` is reached through them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import config
from core.errors import UnusablePath, WorkspaceNotFound

if TYPE_CHECKING:
    import pandas as pd

    from core.export import WrittenExport
    from core.jobs import JobStatus
    from core.progress import Progress
    from core.score.scoring import ScoreReport
    from core.storage.database import Store
    from core.storage.datasets import DatasetInfo

__all__ = ["Dataset", "Run", "Selection", "Workspace"]

ACTOR = "api"  # who made a decision, in the history: the pages say "app", the CLI "cli"


class Workspace:
    """A workspace folder: its datasets, runs and exports (created by the first :meth:`prepare`).

    ``path`` defaults to ``CURATE_WORKSPACE`` (else ``./workspace``), as for the CLI and the app.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = config.workspace_dir(None if path is None else str(path))
        if self.path.exists() and not self.path.is_dir():
            raise UnusablePath(f"cannot use {self.path} as the workspace: it is a file, not a folder")

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    def store(self, create: bool = False) -> Store:
        """The workspace's store (``create``: make the folder and database when missing)."""
        from core.safe_paths import check_writable_folder
        from core.storage.database import DB_FILENAME, Store

        if create:
            check_writable_folder(self.path, "the workspace")
        elif not (self.path / DB_FILENAME).is_file():
            raise WorkspaceNotFound(f"no workspace at {self.path}: prepare a dataset first (Workspace.prepare)")
        return Store(self.path)

    def prepare(
        self,
        source: str | Path,
        *,
        name: str | None = None,
        config: str | None = None,
        split: str | None = None,
        streaming: bool = False,
        mapping: dict[str, str | None] | None = None,
        fields: Sequence[str] = ("instruction", "input"),
        k_grid: Sequence[int] | None = None,
        seed: int = 0,
        embedder: dict[str, Any] | None = None,
        skip_bad_rows: bool = False,
        replace: bool = False,
        engine: str = "local",
        progress: bool = True,
    ) -> Dataset:
        """Ingest ``source`` (a file; a ``save_to_disk`` or hub-style Parquet folder; or ``hf:ORG/NAME``,
        with its ``config``, ``split`` and ``streaming``), embed, sweep k, label and map it.

        The same checks as ``python -m core prepare`` run first; preparing the same file again reuses the
        stored dataset.
        """
        from core.prepare import PrepareOptions
        from core.prepare import prepare as run_prepare
        from core.prepare_job import PrepareJob

        options = PrepareOptions(
            name=name,
            mapping=mapping,
            skip_bad_rows=skip_bad_rows,
            embedder=embedder,
            embed_fields=tuple(fields),
            k_grid=None if k_grid is None else tuple(k_grid),
            seed=seed,
            replace=replace,
            hf_config=config,
            hf_split=split,
            hf_streaming=streaming,
        )
        from core.safe_paths import check_writable_folder

        check_writable_folder(self.path, "the workspace")
        PrepareJob(str(source), options).validate(self.path)  # checked as a prepare job is, before the store exists
        with _progress(progress) as bar:
            report = run_prepare(self.store(create=True), source, options, bar, engine=_engine(engine))
        return Dataset(self, report.name)

    def datasets(self) -> pd.DataFrame:
        """Every dataset: id, name, rows, skipped rows, status, active k and source."""
        import pandas as pd

        from core.storage import datasets as ds

        columns = ["id", "name", "rows", "skipped", "status", "k", "source"]
        return pd.DataFrame(ds.dataset_rows(self.store()), columns=columns)

    def dataset(self, name: str | None = None) -> Dataset:
        """A dataset by name (default: the newest)."""
        from core.storage import datasets as ds

        return Dataset(self, ds.get_dataset(self.store(), name).name)

    def runs(self) -> pd.DataFrame:
        """Every fine-tuning run: id, state, stage, step, loss, name, selection."""
        import pandas as pd

        from core.runs.run import run_rows

        return pd.DataFrame(run_rows(self.store().workspace))

    def run(self, run_id: str) -> Run:
        """A run started earlier (from here, the CLI or the Runs page)."""
        from core import jobs

        jobs.read_status(self.path, run_id)  # an unknown id fails here, not at first use
        return Run(self, run_id)

    def compare_runs(self, run_ids: Sequence[str]) -> pd.DataFrame:
        """Runs side by side: their selections and each evaluation's loss and accuracy against the base."""
        from core.runs.run import compare_runs

        return compare_runs(self.store().workspace, list(run_ids))


class Dataset:
    """One prepared dataset of a workspace: clusters, decisions, scores, selections, runs and exports.

    Every method reads the dataset afresh, so a change made meanwhile in the app or the CLI is seen.
    """

    def __init__(self, workspace: Workspace, name: str) -> None:
        self.workspace = workspace
        self.name = name

    def __repr__(self) -> str:
        info = self.info
        return f"Dataset({self.name!r}: {info.n_rows} rows, k={info.active_k}, {info.status})"

    @property
    def info(self) -> DatasetInfo:
        """The stored record: rows, status, active k, best and knee k, source, embedder."""
        from core.storage import datasets as ds

        return ds.get_dataset(self._store(), self.name)

    @property
    def k(self) -> int:
        """The active number of clusters (decisions on clusters apply at this k)."""
        return _active_k(self.info)

    def _store(self) -> Store:
        return self.workspace.store()

    # -- clusters and examples --------------------------------------------------------------------------

    def clusters(self) -> pd.DataFrame:
        """The clusters at the active k: id, label, size, veto, weight, vetoed examples, duplicate rows."""
        from core.storage import curation

        info = self.info
        return curation.clusters(self._store(), info.dataset_id, _active_k(info))

    def use_k(self, k: int, progress: bool = True) -> None:
        """Make ``k`` the active clustering (fitted now if the sweep did not include it)."""
        from core.prepare import choose_k

        info = self.info
        if k != info.active_k:
            with _progress(progress) as bar:
                choose_k(self._store(), info, k, bar)

    def examples(
        self, *, cluster: int | None = None, search: str | None = None, limit: int = 20, offset: int = 0
    ) -> pd.DataFrame:
        """A page of examples in row order (one cluster's, or those matching a word), with veto and copies."""
        from core.storage import curation

        info = self.info
        page, _ = curation.examples(
            self._store(),
            info.dataset_id,
            _active_k(info),
            cluster_id=cluster,
            search=search,
            limit=limit,
            offset=offset,
        )
        return page

    # -- decisions ----------------------------------------------------------------------------------------

    def veto(
        self,
        *,
        cluster: int | None = None,
        examples: Sequence[str] | None = None,
        search: str | None = None,
        undo: bool = False,
    ) -> int:
        """Veto a cluster (at the active k), examples by id, or every example matching ``search``;
        ``undo=True`` takes the veto back. Returns how many decisions changed."""
        from core.storage import curation

        chosen = [what for what in (cluster, examples, search) if what is not None]
        if len(chosen) != 1:
            raise ValueError("veto takes exactly one of cluster=, examples= or search=")
        store, info, vetoed = self._store(), self.info, not undo
        rows: Any
        if cluster is not None:
            return int(curation.set_cluster_veto(store, info.dataset_id, _active_k(info), cluster, vetoed, actor=ACTOR))
        if search is not None:
            if not search.strip():
                raise ValueError("search= needs a word")
            rows = curation.matching_rows(store, info.dataset_id, _active_k(info), search=search.strip())
            reason = f"search: {search.strip()!r}"
        else:
            rows = [str(example_id) for example_id in examples or []]  # ids: an unknown one fails, nothing written
            reason = f"{len(rows)} examples by id"
        return curation.bulk_example_veto(store, info.dataset_id, rows, vetoed, actor=ACTOR, reason=reason)

    def weigh(self, cluster: int, weight: float) -> None:
        """A cluster's weight at the active k (1 is neutral; weighted strategies draw more from heavier ones)."""
        from core.storage import curation

        info = self.info
        curation.set_cluster_weight(self._store(), info.dataset_id, _active_k(info), cluster, weight, actor=ACTOR)

    def history(self, limit: int = 200) -> pd.DataFrame:
        """The newest decisions first, each with its batch, actor and what it changed."""
        from core.storage import curation

        return curation.history(self._store(), self.info.dataset_id, limit)

    def undo(self, batch: int | None = None) -> int:
        """Take the last batch of decisions back (or batch ``batch``); returns how many were written back."""
        from core import edits

        return int(edits.undo(self._store(), self.info, batch, actor=ACTOR).changed)

    # -- quality ------------------------------------------------------------------------------------------

    def score(
        self, scorer: str, *, limit: int | None = None, engine: str = "local", progress: bool = True, **params: Any
    ) -> ScoreReport:
        """Run a scorer (``heuristics``, ``perplexity``, ``ifd``, ...; parameters as in ``params scorers``).

        Rows scored before with the same settings are reused; ``limit`` scores a stratified sample.
        """
        from core.score.job import ScoreJob
        from core.score.scoring import build_scorer, score_dataset

        store, info = self._store(), self.info
        spec = ScoreJob(info.name, scorer, params, limit)
        spec.validate(store.workspace)  # a bad parameter fails before any model loads
        built = build_scorer(spec.scorer, **spec.params)
        with _progress(progress) as bar:
            return score_dataset(
                store, info, built, limit=limit, progress=bar, engine=_engine(engine) if built.uses_model else None
            )

    def quality(self, threshold: float = 0.3) -> pd.DataFrame:
        """Per cluster: size, the mean combined quality and each scorer's mean, lowest quality first."""
        from core.score.quality import cluster_quality, example_quality
        from core.score.scoring import cluster_summary
        from core.storage import datasets as ds

        store, info = self._store(), self.info
        table = cluster_summary(store, info)
        means = cluster_quality(example_quality(store, info), ds.assignments(store, info.dataset_id, self.k))
        table.insert(3, "quality_mean", table.cluster_id.map(means))
        table["below_threshold"] = table.quality_mean < threshold
        return table.sort_values("quality_mean").reset_index(drop=True)

    def example_quality(self) -> pd.DataFrame:
        """Per example (row order): the combined quality in [0, 1] (NaN before any scorer ran)."""
        import pandas as pd

        from core.score.quality import example_quality

        values = example_quality(self._store(), self.info)
        return pd.DataFrame({"row_idx": range(len(values)), "quality": values})

    def duplicates(self, group: int | None = None, limit: int = 200) -> pd.DataFrame:
        """The near-duplicate groups the ``minhash`` scorer found, biggest first (a group is named by the row
        it keeps), or with ``group`` that group's rows and texts, the kept row first."""
        from core.score.duplicates import duplicate_groups

        return duplicate_groups(self._store(), self.info, group, limit)

    # -- selection ----------------------------------------------------------------------------------------

    def needs(self, strategy: str, budget: float, **params: Any) -> list[str]:
        """What ``strategy`` needs (embeddings, scores, features), what is missing and its estimated time."""
        from core.select import needs
        from core.select.run import build_strategy

        built = build_strategy(strategy, params)
        info = self.info
        own = needs.strategy_estimate(built.name, info.n_rows, budget, int(getattr(built, "candidates", 0)))
        return needs.summary_lines(needs.requirements(self._store(), info, built), own)

    def select(
        self,
        strategy: str,
        budget: float,
        *,
        seed: int = 0,
        k: int | None = None,
        name: str | None = None,
        **params: Any,
    ) -> Selection:
        """Select ``budget`` examples (a count, or a fraction below 1) of the kept pool and save the selection.

        Gradient features a LESS or G2IS selection lacks are computed first, as the CLI does.
        """
        from core.errors import MissingGradients
        from core.select.run import build_strategy, run_selection, save_selection

        store, info = self._store(), self.info
        built = build_strategy(strategy, params)
        try:
            result = run_selection(store, info, built, budget, seed=seed, k=k)
        except MissingGradients:
            if "gradients" not in built.needs and "target" not in built.needs:
                raise
            self.gradients(targets=_targets_of(built))
            result = run_selection(store, info, built, budget, seed=seed, k=k)
        return Selection(self, save_selection(store, info, result, name))

    def gradients(self, targets: Sequence[str] = (), progress: bool = True, **params: Any) -> dict[str, Any]:
        """LoRA-gradient features of the dataset (and of each target file) and their neighbour graph."""
        from core.gradients.job import GradientsJob
        from core.gradients.pipeline import compute_gradients

        store, info = self._store(), self.info
        spec = GradientsJob(dataset=info.name, config=dict(params), targets=tuple(targets))
        spec.validate(store.workspace)
        with _progress(progress) as bar:
            return compute_gradients(
                store, info, spec.gradient_config(store, info.dataset_id), list(targets), bar, engine=None
            )

    def hidden_states(self, targets: Sequence[str] = (), progress: bool = True, **params: Any) -> dict[str, Any]:
        """The base model's pooled hidden states (what ``rds_plus`` ranks by), of the dataset and targets."""
        from core.hidden.job import HiddenStatesJob
        from core.hidden.pipeline import compute_hidden_states

        store, info = self._store(), self.info
        spec = HiddenStatesJob(info.name, dict(params), tuple(targets), None)
        spec.validate(store.workspace)
        with _progress(progress) as bar:
            return compute_hidden_states(store, info, spec.hidden_config(), spec.targets, progress=bar)

    def selections(self) -> pd.DataFrame:
        """The saved selections of this dataset, newest first."""
        from core.storage import selections

        return selections.listing(self._store(), self.info.dataset_id)

    def selection(self, selection_id: int) -> Selection:
        """A saved selection by id."""
        from core.storage import selections

        selections.get(self._store(), selection_id)  # an unknown id fails here
        return Selection(self, selection_id)

    def compare(self, first: int | Selection, second: int | Selection) -> dict[str, Any]:
        """Two selections side by side: overlap, diversity, quality, cluster and source shares, cost."""
        from core.select.compare import compare

        return compare(self._store(), self.info, _selection_id(first), _selection_id(second))

    # -- runs and export ----------------------------------------------------------------------------------

    def run(
        self,
        selection: int | Selection | None = None,
        *,
        strategy: str | None = None,
        budget: float | None = None,
        rounds: int = 2,
        train: dict[str, Any] | None = None,
        eval: Sequence[str | Path] = (),
        eval_limit: int | None = None,
        generate: bool = True,
        max_new_tokens: int = 128,
        seed: int = 0,
        name: str | None = None,
        wait: bool = True,
        **params: Any,
    ) -> Run:
        """Fine-tune (LoRA by default) on a saved selection, or on ``strategy`` with ``budget`` (an iterative
        loop, ``iterative_kmq`` or ``iterit``, runs ``rounds`` rounds), evaluating on ``eval`` files.

        The run is a background job like one started on the Runs page; ``wait`` follows it with a bar.
        """
        from core.runs.loops import LOOPS
        from core.runs.run import RunSpec, launch_run

        if selection is None and (strategy is None or budget is None):
            raise ValueError("run needs a selection, or a strategy and a budget")
        loop = strategy if strategy in LOOPS.names() else "none"
        spec = RunSpec(
            dataset=self.name,
            selection_id=None if selection is None else _selection_id(selection),
            strategy=None if loop != "none" else strategy,
            strategy_params=params if loop == "none" else {},
            loop=loop,
            rounds=rounds,
            loop_params=LOOPS.parse(loop, params) if loop != "none" else {},
            budget=budget,
            seed=seed,
            config={"seed": seed, **(train or {})},
            eval_paths=[str(Path(path).resolve()) for path in eval],
            eval_limit=eval_limit,
            generate=generate,
            max_new_tokens=max_new_tokens,
            name=name,
        )
        run = Run(self.workspace, launch_run(self._store().workspace, spec))
        if wait:
            run.wait()
        return run

    def export(
        self,
        out: str | Path,
        *,
        selection: int | Selection | None = None,
        tag: str | None = None,
        format: str = "jsonl",
        llamafactory: bool = False,
        axolotl: bool = False,
        overwrite: bool = False,
    ) -> WrittenExport:
        """Write the kept pool (or a saved selection, or the examples tagged ``tag``) with its manifest.

        ``format``: ``jsonl`` (the input's own shape), ``messages``, ``sharegpt``, ``parquet`` or ``hf`` (a
        ``datasets`` folder). ``llamafactory`` merges the export's entry into ``dataset_info.json`` beside it;
        ``axolotl`` writes the ``datasets:`` block of an Axolotl config: train on it without editing anything.
        """
        from core.export import TrainerFiles, check_target, existing_outputs, stream_export

        target = Path(out)
        check_target(target, format, llamafactory)
        existing = existing_outputs(target, axolotl)
        if existing and not overwrite:
            raise UnusablePath(f"{' and '.join(map(str, existing))} already exist(s); pass overwrite=True")
        return stream_export(
            self._store(),
            self.info,
            target,
            selection_id=None if selection is None else _selection_id(selection),
            tag=tag,
            fmt=format,
            trainer_files=TrainerFiles(llamafactory=llamafactory, axolotl=axolotl),
        )


@dataclasses.dataclass(frozen=True)
class Selection:
    """A saved selection: its record (strategy, seed, budget, k, decisions, cost) and its examples."""

    dataset: Dataset
    id: int

    @property
    def record(self) -> dict[str, Any]:
        """Everything stored with it: strategy and parameters, seed, budget, k, report, cost."""
        from core.storage import selections

        return selections.get(self.dataset.workspace.store(), self.id)

    def __len__(self) -> int:
        return int(self.record["size"])

    def examples(self) -> pd.DataFrame:
        """The selected examples in pick order: position, row_idx, example_id, instruction, input, output."""
        from core.storage import selections

        store = self.dataset.workspace.store()
        picks = selections.items(store, self.id)
        texts = selections.item_texts(store, self.id)  # the same pick order
        return picks.join(texts)

    @property
    def example_ids(self) -> list[str]:
        """The selected examples' ids, in pick order."""
        from core.storage import selections

        return [str(i) for i in selections.items(self.dataset.workspace.store(), self.id).example_id]


@dataclasses.dataclass(frozen=True)
class Run:
    """A fine-tuning run (a background job): its status, losses and evaluations."""

    workspace: Workspace
    id: str

    def status(self) -> JobStatus:
        """State, stage, step, loss, result and error, as the job last wrote them."""
        from core import jobs

        return jobs.read_status(self.workspace.path, self.id)

    def wait(self, poll_seconds: float = 1.0) -> JobStatus:
        """Follow the run with a bar until it ends; raise if it failed. Interrupting stops the waiting,
        not the run (cancel it with :meth:`cancel`)."""
        from tqdm.auto import tqdm

        status = self.status()
        with tqdm(total=1, unit="step") as bar:
            while status.active:
                bar.set_description(status.stage or status.state)
                bar.total, bar.n = max(status.total, 1), status.done
                bar.refresh()
                time.sleep(poll_seconds)
                status = self.status()
        if status.state != "done":
            raise RuntimeError(f"run {self.id} ended {status.state}: {status.error or 'no error recorded'}")
        return status

    def cancel(self) -> None:
        """Ask the run to stop; it saves a checkpoint first (resume it with :meth:`resume`)."""
        from core import jobs

        jobs.request_cancel(self.workspace.path, self.id)

    def resume(self) -> None:
        """Continue a cancelled or killed run from its last checkpoint."""
        from core.runs.run import resume_run

        resume_run(self.workspace.path, self.id)

    def losses(self) -> pd.DataFrame:
        """The training loss per step."""
        from core.runs.run import losses

        return losses(self.workspace.path, self.id)

    def evaluations(self) -> dict[str, Any]:
        """Each evaluation set's loss and accuracy, for the base model and the fine-tuned one."""
        from core.runs.run import evaluations

        return evaluations(self.workspace.path, self.id)


def _active_k(info: DatasetInfo) -> int:
    if not info.active_k:
        raise ValueError(f"dataset {info.name!r} has no clustering yet: its prepare has not finished")
    return int(info.active_k)


def _selection_id(selection: int | Selection) -> int:
    return selection.id if isinstance(selection, Selection) else int(selection)


def _targets_of(strategy: Any) -> list[str]:
    from core.gradients.pipeline import target_paths

    return list(target_paths(getattr(strategy, "target", "")))


def _engine(name: str) -> Any:
    """The engine named (``local`` or ``ray``); None for this process, as the core functions expect."""
    from core.engines import engine_from_options

    engine = engine_from_options(name, None)
    return None if engine.name == "local" else engine


@contextmanager
def _progress(show: bool) -> Iterator[Progress]:
    """A tqdm bar per stage (or silence); an error erases the bar so the traceback stands alone."""
    from core.progress import Progress, TqdmProgress

    if not show:
        yield Progress()
        return
    bar = TqdmProgress()
    try:
        yield bar
    except BaseException:
        bar.close(discard=True)
        raise
    bar.close()
