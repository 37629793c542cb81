"""Command line: ``python -m core COMMAND``; the same core functions the pages call.

Every command takes ``--workspace DIR`` (default ``CURATE_WORKSPACE``, else ``./workspace``) and most take
``--dataset NAME`` (default: the most recently prepared dataset). Errors print one clear line and exit 1,
never a traceback; only ``prepare`` creates a workspace. Output cut short by a closed pipe (``| head``) ends
quietly with status 141, as Unix tools do.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from core import config


def _add_common(parser: argparse.ArgumentParser, dataset: bool = True) -> None:
    parser.add_argument(
        "--workspace", default=None, help="workspace folder (default: $CURATE_WORKSPACE or ./workspace)"
    )
    if dataset:
        parser.add_argument("--dataset", default=None, help="dataset name or id (default: the newest)")


def _parse_mapping(items: list[str]) -> dict[str, str | None] | None:
    if not items:
        return None
    mapping: dict[str, str | None] = {}
    for item in items:
        field, sep, column = item.partition("=")
        if not sep:
            raise ValueError(f"--map takes FIELD=COLUMN (e.g. instruction=prompt), not {item!r}")
        mapping[field.strip()] = column.strip() or None
    return mapping


# Every plugin family, by the name the `params` command takes.
FAMILIES = ("strategies", "loops", "scorers", "embedders", "clusterers", "reducers")


def _int_list(text: str | None) -> tuple[int, ...] | None:
    return tuple(int(part) for part in text.split(",") if part.strip()) if text else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Instruction-data curation studio (CLI).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "prepare", help="ingest a dataset file or Hugging Face dataset, embed, cluster over a k sweep, map"
    )
    _add_common(p, dataset=False)
    p.add_argument(
        "path",
        help=".jsonl, .json, .csv or .parquet file; hf:ORG/NAME (a Hugging Face hub dataset); or a folder written "
        "by save_to_disk or holding Parquet shards (data/train-00000-of-00002.parquet)",
    )
    p.add_argument("--name", help="dataset name (default: the file name without suffix; hf:ORG/NAME: NAME)")
    p.add_argument("--config", default=None, help="a Hugging Face dataset's config (subset)")
    p.add_argument("--split", default=None, help="a Hugging Face dataset's split (default: its only split, else train)")
    p.add_argument(
        "--streaming",
        action="store_true",
        help="stream a Hugging Face dataset's rows instead of downloading it whole into the datasets cache first",
    )
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="column mapping for other column names, e.g. --map instruction=prompt --map output=completion",
    )
    p.add_argument("--skip-bad-rows", action="store_true", help="store the good rows and report the bad ones")
    p.add_argument("--embedder", default="sentence-transformers", help="embedder name (sentence-transformers, hashing)")
    p.add_argument(
        "--model", default=None, help="sentence-transformers path or hub id (default: packaged all-MiniLM-L6-v2)"
    )
    p.add_argument(
        "--fields", default="instruction,input", help="fields embedded, comma-separated (default: instruction,input)"
    )
    p.add_argument("--k-grid", default=None, help="k values to sweep, comma-separated (default: from the dataset size)")
    p.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    p.add_argument("--replace", action="store_true", help="replace a dataset of the same name holding another file")
    _add_engine(p, "the embedding")

    p = sub.add_parser("datasets", help="list the workspace's datasets")
    _add_common(p, dataset=False)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("clusters", help="show the clusters of a dataset; --k chooses another k")
    _add_common(p)
    p.add_argument("--k", type=int, default=None, help="make this k the active clustering (fitted if not swept)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser(
        "veto",
        help="veto a cluster (--cluster), an example (--example), or every example matching a keyword (--search) "
        "or given by row (--rows) as one batch; --undo-veto un-vetoes",
    )
    _add_common(p)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--cluster", type=int, help="a cluster of the active k (the cluster itself is vetoed)")
    target.add_argument("--example", help="one example, by its id")
    target.add_argument("--search", metavar="WORD", help="every example whose instruction or output holds WORD")
    target.add_argument("--rows", metavar="LIST", help="rows by number (as the app shows them), e.g. 1,2,5-9")
    p.add_argument("--undo-veto", "--undo", dest="undo", action="store_true", help="un-veto instead")

    p = sub.add_parser(
        "tag",
        help="put a free tag on clusters (--cluster), examples (--example, --rows) or every example matching a "
        "keyword (--search), as one batch; --remove takes it off; with no target, lists the dataset's tags",
    )
    _add_common(p)
    p.add_argument("tag", nargs="?", default=None, help="the tag (1 to 60 characters)")
    chosen = p.add_mutually_exclusive_group()
    chosen.add_argument("--cluster", metavar="IDS", help="clusters of the active k, e.g. 3 or 1,4,7")
    chosen.add_argument("--example", help="one example, by its id")
    chosen.add_argument("--search", metavar="WORD", help="every example whose instruction or output holds WORD")
    chosen.add_argument("--rows", metavar="LIST", help="rows by number (as the app shows them), e.g. 1,2,5-9")
    p.add_argument("--remove", action="store_true", help="take the tag off instead")

    p = sub.add_parser("rename", help="name a cluster of the active k (--clear: back to its computed label)")
    _add_common(p)
    p.add_argument("--cluster", type=int, required=True)
    named = p.add_mutually_exclusive_group(required=True)
    named.add_argument("--name", help="the cluster's name (at most 80 characters)")
    named.add_argument("--clear", action="store_true", help="drop the name")

    p = sub.add_parser(
        "merge", help="merge clusters of the active k into one (one batch of the history; `undo` splits them again)"
    )
    _add_common(p)
    p.add_argument("clusters", metavar="IDS", help="two or more clusters, e.g. 3,7 or 1-4")
    p.add_argument("--into", type=int, default=None, help="the cluster that stays (default: the largest)")

    p = sub.add_parser(
        "split",
        help="split a cluster of the active k into sub-clusters by k-means inside it; --preview shows the parts "
        "without storing them",
    )
    _add_common(p)
    p.add_argument("cluster", type=int, help="the cluster to split")
    p.add_argument("--parts", type=int, default=2, help="how many sub-clusters (2 to 20; default 2)")
    p.add_argument("--seed", type=int, default=None, help="k-means seed (default: the dataset's)")
    p.add_argument("--preview", action="store_true", help="show the parts; store nothing")

    p = sub.add_parser("weight", help="set a cluster's weight (1 is neutral)")
    _add_common(p)
    p.add_argument("--cluster", type=int, required=True)
    p.add_argument("--value", type=float, required=True)

    p = sub.add_parser(
        "export",
        help="write every non-vetoed example (or a saved selection) as JSONL, chat JSONL, Parquet or a datasets "
        "folder, with a manifest beside it",
    )
    _add_common(p)
    p.add_argument("--out", required=True, help="output path: a file (.jsonl, .parquet), or a new folder for hf")
    p.add_argument("--selection", type=int, default=None, help="export this saved selection (see `selections`)")
    p.add_argument("--tag", default=None, help="only the kept examples carrying this tag (themselves or their cluster)")
    p.add_argument(
        "--format",
        default="jsonl",
        help="jsonl (default: the input's own shape), messages (chat role/content), sharegpt (from/value), "
        "parquet, hf (a datasets folder for load_from_disk)",
    )
    p.add_argument(
        "--llamafactory", action="store_true", help="also add the export's entry to dataset_info.json in its folder"
    )
    p.add_argument("--axolotl", action="store_true", help="also write NAME.axolotl.yaml: the config's datasets: block")
    p.add_argument(
        "--force", action="store_true", help="overwrite the export, its manifest and its Axolotl block if they exist"
    )

    p = sub.add_parser("select", help="run a selection strategy on the kept examples and save the selection")
    _add_common(p)
    p.add_argument(
        "--strategy",
        required=True,
        help="kmq, random, longest, ifd_topk, qdit, ... (all, with their parameters: `python -m core params strategies`)",
    )
    p.add_argument("--budget", type=float, required=True, help="a count, or a fraction of the dataset's rows (0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a strategy parameter (repeatable)"
    )
    p.add_argument("--name", default=None, help="a name for the saved selection")
    p.add_argument("--k", type=int, default=None, help="clustering to use (default: the active k)")
    p.add_argument("--yes", action="store_true", help="run even when the estimate is over two minutes")
    p.add_argument(
        "--target",
        default=None,
        help="target JSONL file(s), comma-separated, for less, g2is, embedding_knn and rds_plus; their gradient "
        "features are computed first when missing (rds_plus: the target's hidden states)",
    )

    p = sub.add_parser(
        "gradients", help="LoRA-gradient features of every example and their neighbour graph (cached, resumable)"
    )
    _add_common(p)
    p.add_argument("--target", action="append", default=[], metavar="FILE", help="also a target set's features")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="e.g. d=2048, warmup_epochs=2")

    _add_engine(p, "the gradient features (the warmup and the graph stay here)")

    p = sub.add_parser(
        "hidden-states",
        help="the base model's pooled hidden states of every example, for rds_plus (cached, resumable)",
    )
    _add_common(p)
    p.add_argument("--model", default=None, help="model name or folder (default: the packaged SmolLM2-135M)")
    p.add_argument("--max-length", type=int, default=None, help="tokens per example, prompt and response (2048)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=None, help="default auto")
    p.add_argument("--limit", type=int, default=None, help="compute at most N more rows now; a rerun continues")
    p.add_argument("--target", action="append", default=[], metavar="FILE", help="also a target set's features")
    _add_engine(p, "the hidden-state pass")
    p = sub.add_parser("run", help="fine-tune on a selection in the background, evaluating before and after")
    _add_common(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--selection", type=int, help="a saved selection (see `selections`)")
    source.add_argument(
        "--strategy",
        help="select with this strategy when the run starts (needs --budget); the loops iterative_kmq and iterit "
        "run their selection-and-fine-tune loop for --rounds rounds (IterIT: epochs)",
    )
    p.add_argument("--rounds", type=int, default=2, help="rounds of iterative_kmq, epochs of iterit")
    p.add_argument("--budget", type=float, help="a count, or a fraction of the dataset's rows")
    p.add_argument("--seed", type=int, default=0, help="selection seed, the loops' draws and training seed")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a strategy or loop parameter, e.g. within=softmax continue_training=true "
        "(all: `python -m core params strategies` or `python -m core params loops`)",
    )
    p.add_argument("--eval", action="append", default=[], metavar="FILE", help="an evaluation JSONL (repeatable)")
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate the first N rows of each set")
    p.add_argument("--no-generate", action="store_true", help="loss only: no generation for exact-match accuracy")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument(
        "--train",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a training parameter, e.g. epochs=2 learning_rate=1e-4 lora_r=16 max_length=256 method=full model=PATH "
        "precision=bf16",
    )
    p.add_argument("--name", default=None)
    p.add_argument("--wait", action="store_true", help="follow the run's progress until it ends")

    p = sub.add_parser("runs", help="list fine-tuning runs; resume or cancel one")
    _add_common(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--resume", metavar="RUN_ID", help="continue a cancelled or interrupted run from its checkpoint")
    p.add_argument("--cancel", metavar="RUN_ID")

    p = sub.add_parser("compare", help="evaluation of runs side by side, with their change against the base model")
    _add_common(p)
    p.add_argument("run_ids", nargs="+")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("selections", help="list saved selections, or compare two")
    _add_common(p)
    p.add_argument(
        "--compare",
        type=int,
        nargs=2,
        metavar=("A", "B"),
        help="overlap, diversity, quality, cost, per-cluster and per-source shares",
    )
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("score", help="score examples with a registered scorer (cached, resumable)")
    _add_common(p)
    p.add_argument(
        "--scorer",
        required=True,
        help="heuristics, tfidf_diversity, minhash, perplexity, ifd, reward or judge (all, with their parameters: `python -m core params scorers`)",
    )
    p.add_argument("--model", default=None, help="causal LM path or hub id (default: packaged SmolLM2-135M-Instruct)")
    p.add_argument("--max-length", type=int, default=None, help="truncate rendered examples to this many tokens")
    p.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default=None,
        help="LM matrix products: auto (bf16 where the hardware has it, the default), bf16 or fp32",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="score a seeded sample of at most N unscored examples, stratified by cluster (at least one each)",
    )
    p.add_argument("--yes", action="store_true", help="run even when the estimate is over an hour")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a scorer parameter (repeatable), e.g. keep=longest; the judge: base_url=URL model=NAME (its API key "
        "comes from the variable api_key_env names, OPENAI_API_KEY by default)",
    )
    _add_engine(p, "a model scorer")

    p = sub.add_parser("scores", help="per-cluster mean and spread of every stored score, and combined quality")
    _add_common(p)
    p.add_argument("--threshold", type=float, default=0.3, help="clusters below this mean combined quality")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("duplicates", help="the near-duplicate groups the minhash scorer found, biggest first")
    _add_common(p)
    p.add_argument("--group", type=int, default=None, help="one group's rows (a group is named by the row it keeps)")
    p.add_argument("--limit", type=int, default=20, help="at most N groups (default 20)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser(
        "params", help="the registered strategies, loops, scorers, embedders, clusterers and reducers, with parameters"
    )
    p.add_argument("family", nargs="?", choices=FAMILIES, help="only this family (default: all)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser(
        "index",
        help="build a dataset's keyword-search word index (datasets prepared before it existed have none, and "
        "their searches scan every text); holds the workspace about 2 min at a million rows",
    )
    _add_common(p)

    p = sub.add_parser("history", help="the decisions taken on a dataset, newest first, one line per batch")
    _add_common(p)
    p.add_argument("--limit", type=int, default=None, help="at most N batches (--json: N rows; default 200)")
    p.add_argument("--json", action="store_true", help="every history row, with its batch id and actor")

    p = sub.add_parser("undo", help="undo a batch of decisions (default: the latest one in effect)")
    _add_common(p)
    p.add_argument("--batch", type=int, default=None, metavar="ID", help="the batch to undo (see `history`)")
    p.add_argument(
        "--force", action="store_true", help="write the old values back even where a later batch changed them"
    )

    p = sub.add_parser("revert", help="bring every decision back to what it was right after a batch or history row")
    _add_common(p)
    p.add_argument("--to", type=int, required=True, metavar="HISTORY_ID", help="a batch or history row id")
    return parser


def _workspace(args: argparse.Namespace, create: bool = False) -> Path:
    """The workspace folder, checked before the store touches it: only ``prepare`` may create one, so a
    mistyped ``--workspace`` on any other command says so instead of leaving an empty workspace behind."""
    from core.errors import UnusablePath, WorkspaceNotFound
    from core.safe_paths import check_writable_folder
    from core.storage.database import DB_FILENAME

    path = config.workspace_dir(args.workspace)
    if path.exists() and not path.is_dir():
        raise UnusablePath(f"cannot use {path} as the workspace: it is a file, not a folder")
    if create:
        check_writable_folder(path, "the workspace")
    elif not (path / DB_FILENAME).is_file():
        raise WorkspaceNotFound(f"no workspace at {path}: run `python -m core prepare FILE` first")
    return path


def _store(args: argparse.Namespace, create: bool = False) -> Any:
    from core.storage.database import Store

    return Store(_workspace(args, create))


def _dataset(store: Any, args: argparse.Namespace) -> Any:
    from core.storage import datasets as ds

    return ds.get_dataset(store, args.dataset)


def _add_engine(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help=f"where {what} runs: local (this process, the default) or ray (a Ray cluster)",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="the Ray cluster: local (start one on this machine for the job; the default), auto, or HOST:PORT "
        "(default: CURATE_RAY_ADDRESS)",
    )


def _engine(args: argparse.Namespace) -> Any:
    """The engine the flags ask for; None for this process."""
    from core.engines import engine_from_options

    engine = engine_from_options(args.engine, args.ray_address)
    return None if engine.name == "local" else engine


def _print_engine(run: dict[str, Any] | None) -> None:
    """Where a Ray run's time went (shards computed now and merged from a killed run, actors, phases)."""
    if not run or run["engine"] == "local":
        return
    phases = ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in run["seconds"].items())
    print(
        f"ray: {run['computed_shards']} shards computed, {run['recovered_shards']} merged from an earlier run, "
        f"{run['actors']} actors; {phases}"
    )


def cmd_prepare(args: argparse.Namespace) -> int:
    from core.prepare import PrepareOptions, prepare
    from core.prepare_job import PrepareJob
    from core.progress import TqdmProgress

    embedder: dict[str, Any] = {"name": args.embedder}
    if args.model:
        embedder["model"] = args.model
    options = PrepareOptions(
        name=args.name,
        mapping=_parse_mapping(args.map),
        skip_bad_rows=args.skip_bad_rows,
        embedder=None if embedder == {"name": "sentence-transformers"} else embedder,
        embed_fields=tuple(f.strip() for f in args.fields.split(",") if f.strip()),
        k_grid=_int_list(args.k_grid),
        seed=args.seed,
        replace=args.replace,
        hf_config=args.config,
        hf_split=args.split,
        hf_streaming=args.streaming,
    )
    workspace = _workspace(args, create=True)
    PrepareJob(str(args.path), options).validate(workspace)  # checked as a prepare job is, before the store exists
    store = _store(args, create=True)
    progress = TqdmProgress()
    try:
        report = prepare(store, args.path, options, progress, engine=_engine(args))
    except BaseException:
        progress.close(discard=True)
        raise
    progress.close()
    if report.reused:
        print(f"dataset {report.name!r} is already prepared from this file: nothing recomputed")
    else:
        print(
            f"prepared {report.name!r}: {report.n_rows} rows, {report.embedded} embedded, "
            f"{report.embeddings_cached} from cache; best silhouette k={report.best_k}, knee k={report.knee_k}"
        )
        for note in report.sample_notes:  # a large dataset's sweep and map run on samples: say how
            print(f"note: {note}", file=sys.stderr)
    _print_engine(report.engine)
    _print_sweep_notes(store, report.name)
    if report.n_skipped:
        print(f"skipped {report.n_skipped} bad rows:")
        for line in report.skipped[:20]:
            print(f"  {line}")
        if report.n_skipped > 20:
            print(f"  ... and {report.n_skipped - 20} more")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from core.storage import datasets as ds

    rows = ds.dataset_rows(_store(args))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['id']:>3}  {row['name']:<30} {row['rows']:>8} rows  k={row['k']}  {row['status']}")
    return 0


def cmd_clusters(args: argparse.Namespace) -> int:
    from core.prepare import choose_k
    from core.progress import TqdmProgress
    from core.storage import curation

    store = _store(args)
    dataset = _dataset(store, args)
    if args.k is not None and args.k != dataset.active_k:
        choose_k(store, dataset, args.k, TqdmProgress())
        dataset = _dataset(store, args)
    table = curation.clusters(store, dataset.dataset_id, dataset.active_k)
    rows = [
        {
            "cluster": int(r.cluster_id),
            "label": r.label,
            "size": int(r.size),
            "vetoed": bool(r.vetoed),
            "weight": float(r.weight),
            "vetoed_examples": int(r.vetoed_examples),
            "duplicate_rows": int(r.duplicate_rows),
        }
        for r in table.itertuples()
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "dataset": dataset.name,
                    "k": dataset.active_k,
                    "best_k": dataset.best_k,
                    "knee_k": dataset.knee_k,
                    "notes": _sweep_notes(store, dataset.name),
                    "clusters": rows,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        print(f"{dataset.name}: k={dataset.active_k} (best silhouette k={dataset.best_k}, knee k={dataset.knee_k})")
        _print_sweep_notes(store, dataset.name)
        for row in rows:
            flag = "VETOED" if row["vetoed"] else ""
            print(f"{row['cluster']:>4} {row['size']:>7}  w={row['weight']:<4g} {flag:<7} {row['label']}")
    return 0


def _sweep_notes(store: Any, name: str) -> list[str]:
    """The sweep's warnings (no best k and why, dropped empty clusters, best k at the grid's edge)."""
    import shlex

    from core.prepare import sweep_notes
    from core.storage import datasets as ds

    dataset = ds.get_dataset(store, name)
    hint = f"Fit another k with: python -m core clusters --dataset {shlex.quote(name)} --k N"
    return sweep_notes(store, dataset, extend_hint=hint)


def _print_sweep_notes(store: Any, name: str) -> None:
    """The notes go to stderr, as warnings do, so the summary line on stdout stays the same for scripts."""
    for note in _sweep_notes(store, name):
        print(f"note: {note}", file=sys.stderr)


CLI_ACTOR = "cli"


def parse_rows(text: str, option: str = "--rows") -> list[int]:
    """``1,2,5-9`` as [1, 2, 5, 6, 7, 8, 9]; a ValueError naming ``option`` and the bad part."""
    rows: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high) if dash else int(low)
        except ValueError:
            raise ValueError(f"{option} takes numbers and ranges such as 1,2,5-9, not {part!r}") from None
        if first < 0 or last < first:
            raise ValueError(f"{option}: {part!r} is not a range of numbers (from 0, low-high)")
        rows.extend(range(first, last + 1))
    return rows


def cmd_veto(args: argparse.Namespace) -> int:
    from core.storage import curation

    store = _store(args)
    dataset = _dataset(store, args)
    vetoed = not args.undo
    if args.search is not None or args.rows is not None:
        return _bulk_veto(store, dataset, args, vetoed)
    if args.cluster is not None:
        changed = curation.set_cluster_veto(
            store, dataset.dataset_id, dataset.active_k, args.cluster, vetoed, actor=CLI_ACTOR
        )
        target = f"cluster {args.cluster} (k={dataset.active_k})"
    else:
        changed = curation.set_example_veto(store, dataset.dataset_id, args.example, vetoed, actor=CLI_ACTOR)
        target = f"example {args.example}"
    state = "vetoed" if vetoed else "not vetoed"
    print(f"{target} is now {state}" if changed else f"{target} was already {state}")
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    from core.storage import curation

    store = _store(args)
    dataset = _dataset(store, args)
    name = None if args.clear else args.name
    changed = curation.set_cluster_name(
        store, dataset.dataset_id, dataset.active_k, args.cluster, name, actor=CLI_ACTOR
    )
    label = curation.cluster_states(store, dataset.dataset_id, dataset.active_k).set_index("cluster_id").label
    state = f"is now {label[args.cluster]!r}" if changed else f"was already {label[args.cluster]!r}"
    print(f"cluster {args.cluster} (k={dataset.active_k}) {state}")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    from core.storage import curation, tags

    store = _store(args)
    dataset = _dataset(store, args)
    targets = [args.cluster, args.example, args.search, args.rows]
    if args.tag is None or all(t is None for t in targets):
        if args.tag is not None:
            raise ValueError("say what to tag: --cluster, --example, --search or --rows")
        found = tags.all_tags(store, dataset.dataset_id)
        print("\n".join(f"{tag}\t{n}" for tag, n in found.items()) if found else "no tags yet")
        return 0
    k = dataset.active_k
    if args.cluster is not None:
        chosen = parse_rows(args.cluster, "--cluster")
        refs = [tags.cluster_ref(k, c) for c in chosen]
        known = set(curation.cluster_states(store, dataset.dataset_id, k).cluster_id)
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise ValueError(f"no cluster {unknown[0]} at k={k}")
        what = f"clusters {args.cluster} (k={k})"
    elif args.example is not None:
        if not curation.example_ids_at(store, dataset.dataset_id, example_ids=[args.example]):
            raise LookupError(f"no example with id {args.example!r} in this dataset")
        refs, what = [tags.example_ref(args.example)], f"example {args.example}"
    else:
        search = args.search.strip() if args.search is not None else None
        rows = (
            curation.matching_rows(store, dataset.dataset_id, k, search=search)
            if search
            else parse_rows(args.rows or "")
        )
        ids = curation.example_ids_at(store, dataset.dataset_id, rows=[int(r) for r in rows])
        if len(ids) < len(set(int(r) for r in rows)):
            raise LookupError(f"rows {args.rows} name rows this dataset does not have (it has {dataset.n_rows})")
        refs, what = [tags.example_ref(i) for i in ids], (f"search: {search!r}" if search else f"rows {args.rows}")
    changed = tags.set_tag(store, dataset.dataset_id, refs, args.tag, not args.remove, actor=CLI_ACTOR, reason=what)
    verb = "took" if args.remove else "put"
    where = "off" if args.remove else "on"
    print(f"{verb} {args.tag.strip()!r} {where} {changed:,} of {len(set(refs)):,} ({what})")
    return 0


def _bulk_veto(store: Any, dataset: Any, args: argparse.Namespace, vetoed: bool) -> int:
    """Every example matching ``--search`` or numbered in ``--rows``, vetoed (or un-vetoed) as one batch."""
    from core.storage import curation

    if args.search is not None:
        if not args.search.strip():
            raise ValueError("--search needs a word")
        rows: Any = curation.matching_rows(store, dataset.dataset_id, dataset.active_k, search=args.search.strip())
        reason = f"search: {args.search.strip()!r}"
        if len(rows) == 0:
            print(f"no example matches {args.search.strip()!r}: nothing changed")
            return 0
    else:
        rows = parse_rows(args.rows)
        reason = f"rows {args.rows}"
    changed = curation.bulk_example_veto(store, dataset.dataset_id, rows, vetoed, actor=CLI_ACTOR, reason=reason)
    verb = "vetoed" if vetoed else "un-vetoed"
    already = len(set(rows)) - changed
    note = f"; {already:,} already {'vetoed' if vetoed else 'not vetoed'}" if already else ""
    print(f"{verb} {changed:,} of {len(set(rows)):,} examples ({reason}){note}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from core import edits

    store = _store(args)
    dataset = _dataset(store, args)
    chosen = parse_rows(args.clusters, "the cluster list")
    done = edits.merge(store, dataset, int(dataset.active_k), chosen, into=args.into, actor=CLI_ACTOR)
    for item in done.clusters:
        print(f"cluster {item['cluster_id']}: {item['size']:,} examples, {item['label']}")
    print(f"{done.summary}: {done.moved:,} examples moved (recorded as #{done.batch_id}; `undo` reverts it)")
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from core import edits

    store = _store(args)
    dataset = _dataset(store, args)
    preview = edits.preview_split(store, dataset, int(dataset.active_k), args.cluster, args.parts, args.seed)
    for part in preview.parts:
        print(f"cluster {part['cluster_id']}: {part['size']:,} examples, {part['label']}")
    if args.preview:
        print(f"preview only: nothing stored (run without --preview to split cluster {args.cluster})")
        return 0
    done = edits.split(store, preview, dataset, actor=CLI_ACTOR)
    print(f"{done.summary}: {done.moved:,} examples (recorded as #{done.batch_id}; `undo` merges them back)")
    return 0


def cmd_weight(args: argparse.Namespace) -> int:
    from core.storage import curation

    store = _store(args)
    dataset = _dataset(store, args)
    curation.set_cluster_weight(store, dataset.dataset_id, dataset.active_k, args.cluster, args.value, actor=CLI_ACTOR)
    print(f"cluster {args.cluster} (k={dataset.active_k}) weight = {args.value:g}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.errors import UnusablePath
    from core.export import TrainerFiles, check_target, existing_outputs, stream_export

    store = _store(args)
    target = Path(args.out)
    check_target(target, args.format, args.llamafactory)  # before the export is built: a bad path fails at once
    existing = existing_outputs(target, args.axolotl)
    if existing and not args.force:
        names = " and ".join(str(path) for path in existing)
        verb = "exist" if len(existing) > 1 else "exists"
        raise UnusablePath(f"{names} already {verb}; pass --force to overwrite")
    trainer_files = TrainerFiles(llamafactory=args.llamafactory, axolotl=args.axolotl)
    dataset = _dataset(store, args)
    written = stream_export(
        store, dataset, target, selection_id=args.selection, tag=args.tag, fmt=args.format, trainer_files=trainer_files
    )
    print(f"wrote {written.n_rows} rows to {written.path} (manifest: {written.manifest_path})")
    for path in written.trainer_files:
        print(f"wrote {path}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from core.storage import curation, history

    store = _store(args)
    dataset_id = _dataset(store, args).dataset_id
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    if args.json:
        frame = curation.history(store, dataset_id, args.limit or 200)
        print(frame.to_json(orient="records", date_format="iso"))
        return 0
    for batch in history.batches(store, dataset_id, args.limit or 200):
        when = f"{batch.changed_at:%Y-%m-%d %H:%M:%S}" if batch.changed_at else "?"
        state = "" if batch.in_effect else f"  [undone by #{batch.undone_by}]"
        change = f"  ({batch.change})" if batch.change else ""
        print(f"#{batch.batch_id:<6} {when}  {batch.actor:<20} {batch.summary}{change}{state}")
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    from core import edits

    store = _store(args)
    done = edits.undo(store, _dataset(store, args), args.batch, actor=CLI_ACTOR, force=args.force)
    print(f"{done.summary}: {done.changed:,} decisions written back (recorded as #{done.batch_id})")
    return 0


def cmd_revert(args: argparse.Namespace) -> int:
    from core import edits

    store = _store(args)
    done = edits.revert_to(store, _dataset(store, args), args.to, actor=CLI_ACTOR)
    print(f"{done.summary}: {done.changed:,} decisions written back (recorded as #{done.batch_id})")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from core.storage import search

    store = _store(args)
    dataset = _dataset(store, args)
    print(f"indexing the words of {dataset.n_rows:,} examples of {dataset.name!r} ...", file=sys.stderr)
    start = time.perf_counter()
    words = search.build_index(store, dataset.dataset_id)
    print(f"{dataset.name}: {words:,} words indexed in {time.perf_counter() - start:.1f} s; searches use the index")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from core.progress import TqdmProgress
    from core.score.job import ScoreJob
    from core.score.scoring import build_scorer, estimate_seconds, pending, score_dataset

    store = _store(args)
    dataset = _dataset(store, args)
    params: dict[str, Any] = {"model": args.model, "max_length": args.max_length, "precision": args.precision}
    from core.score.scorers import SCORERS

    if not SCORERS.get(args.scorer).uses_model:
        params = {"model": args.model} if args.scorer == "judge" else {}  # the judge's model is on its server
    params.update(SCORERS.parse(args.scorer, _pairs(args.param, "--param")))
    # checked as a score job is, then run in this process with a progress bar
    spec = ScoreJob(dataset.name, args.scorer, {k: v for k, v in params.items() if v is not None}, args.limit)
    spec.validate(store.workspace)
    scorer = build_scorer(spec.scorer, **spec.params)
    todo = pending(store, dataset, scorer, args.limit)
    if todo.empty:
        print(f"every example of {dataset.name!r} already has {args.scorer} scores: nothing to compute")
        return 0
    engine = _engine(args) if scorer.uses_model else None
    if engine is None:  # this machine's measured cost and rate say nothing of a cluster's
        _confirm_score_cost(args, len(todo))
    if args.scorer == "judge":  # requests, tokens, and the rate an earlier run of this judge measured
        from core.score import judge

        print(judge.estimate_for(store, dataset.dataset_id, scorer, len(todo)))  # type: ignore[arg-type]
    if scorer.uses_model and engine is None:
        rate, seconds = estimate_seconds(scorer, todo)
        print(f"estimate: {len(todo)} examples at {rate:.2f}/s on this device = {seconds / 60:.1f} min")
    progress = TqdmProgress()
    try:
        report = score_dataset(store, dataset, scorer, limit=args.limit, progress=progress, engine=engine)
    except BaseException:
        progress.close(discard=True)
        raise
    progress.close()
    print(
        f"scored {report.scored} examples with {report.scorer} ({report.cached} already scored) "
        f"in {report.seconds:.1f} s"
    )
    _print_engine(report.engine)
    if report.tally is not None:
        print(", ".join(f"{value:,.0f} {name.replace('_', ' ')}" for name, value in report.tally.items()))
    if report.scorer == "minhash":
        _print_duplicate_summary(store, dataset)
    return 0


def _print_duplicate_summary(store: Any, dataset: Any) -> None:
    """One line on the MinHash groups of the dataset, when the minhash scorer has run on it."""
    from core.score.minhash import duplicate_summary
    from core.score.quality import raw_signals

    found = duplicate_summary(raw_signals(store, dataset))
    if found is not None:
        print(
            f"near duplicates (minhash): {found[1]} rows flagged in {found[0]} groups of two or more rows "
            f"(`python -m core duplicates --dataset {dataset.name}`)"
        )


def _confirm_score_cost(args: argparse.Namespace, n_rows: int) -> None:
    """Print the cost measured by bench/score.py before any model loads; refuse a run longer than
    ``cost.CONFIRM_SECONDS`` without --yes, naming the bounded form (a stratified --limit)."""
    from core.score import cost

    line = cost.cost_line(args.scorer, n_rows, args.precision or "auto")
    if line is None:
        return
    print(line)
    seconds = cost.projected_seconds(args.scorer, n_rows, args.precision or "auto") or 0.0
    if seconds > cost.CONFIRM_SECONDS and not args.yes:
        sample = max(1, int(cost.CONFIRM_SECONDS * (cost.rate(args.scorer, args.precision or "auto") or 1)))
        raise ValueError(
            f"scoring {n_rows:,} examples with {args.scorer} runs for about {cost.duration(seconds)}: "
            f"add --yes to run it all, or --limit {sample} for a stratified sample of about {cost.duration(cost.CONFIRM_SECONDS)}"
        )


def cmd_scores(args: argparse.Namespace) -> int:
    from core.score.quality import cluster_quality, example_quality, share_below_by_k
    from core.score.scoring import cluster_summary
    from core.storage import datasets as ds

    store = _store(args)
    dataset = _dataset(store, args)
    table = cluster_summary(store, dataset)
    quality = example_quality(store, dataset)
    means = cluster_quality(quality, ds.assignments(store, dataset.dataset_id, int(dataset.active_k)))
    table.insert(3, "quality_mean", table.cluster_id.map(means).round(4))
    by_k = share_below_by_k(store, dataset, quality, args.threshold)
    if args.json:
        print(
            json.dumps(
                {
                    "dataset": dataset.name,
                    "k": dataset.active_k,
                    "threshold": args.threshold,
                    "clusters": table.to_dict("records"),
                    "share_below_by_k": by_k.to_dict("records"),
                },
                indent=2,
                default=float,
            )
        )
    else:
        print(table.sort_values("quality_mean").to_string(index=False))
        print(f"\nclusters with mean combined quality below {args.threshold}, by k:")
        print(by_k.to_string(index=False))
        _print_duplicate_summary(store, dataset)
    return 0


def cmd_duplicates(args: argparse.Namespace) -> int:
    from core.score.duplicates import duplicate_groups

    store = _store(args)
    table = duplicate_groups(store, _dataset(store, args), args.group, args.limit)
    if args.json:
        print(json.dumps(table.to_dict("records"), indent=2, default=str))
    elif args.group is None:
        print(table.to_string(index=False) if len(table) else "every row is a group of its own: no near duplicates")
    else:
        for row in table.itertuples():
            mark = "kept" if row.kept else f"similarity {row.similarity:.3f}"
            print(f"--- row {row.row_idx} ({mark})\n{row.instruction}\n>>> {row.output}")
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    from core.errors import MissingGradients
    from core.gradients.pipeline import target_paths
    from core.gradients.target_report import check_strategy_target
    from core.select.run import build_strategy, run_selection, save_selection
    from core.storage import selections

    store = _store(args)
    dataset = _dataset(store, args)
    params = _pairs(args.param, "--param")
    if args.target:
        params["target"] = args.target
    strategy = build_strategy(args.strategy, params)
    _confirm_select_cost(args, dataset.n_rows, int(getattr(strategy, "candidates", 0)))
    _print_targets(check_strategy_target(getattr(strategy, "target", ""), strategy.needs))
    _print_needs(store, dataset, strategy, args.budget)
    try:
        result = run_selection(store, dataset, strategy, args.budget, seed=args.seed, k=args.k)
    except MissingGradients:
        if "gradients" not in strategy.needs and "target" not in strategy.needs:
            raise
        print("gradient features are missing: computing them first (cached for every later selection)")
        _compute_gradients(store, dataset, target_paths(params.get("target", "")), {})
        result = run_selection(store, dataset, strategy, args.budget, seed=args.seed, k=args.k)
    selection_id = save_selection(store, dataset, result, args.name)
    print(
        f"selection {selection_id}: {len(result.example_ids)} of {result.pool_size} kept examples "
        f"with {args.strategy} (seed {args.seed}, k={result.k}) in {result.seconds:.1f} s"
    )
    print(f"cost: {selections.cost_phrase(selections.get(store, selection_id)['cost'])}")
    if result.report.get("shortfall"):
        print(
            f"note: {result.report['shortfall']} short of the budget of {result.report['budget']}: "
            f"{result.report.get('why', 'the strategy found no more eligible examples')}"
        )
    for note in result.report.get("notes", []):  # e.g. the clusters left without a quota: only empty responses
        print(f"note: {note}")
    return 0


def _print_needs(store: Any, dataset: Any, strategy: Any, budget: float) -> None:
    """What the strategy needs and its estimated time here (core/select/needs.py), when something is missing."""
    from core.select import needs

    found = needs.requirements(store, dataset, strategy)
    if needs.missing(found):
        own = needs.strategy_estimate(strategy.name, dataset.n_rows, budget, int(getattr(strategy, "candidates", 0)))
        print(f"{strategy.name} needs:")
        for line in needs.summary_lines(found, own):
            print(f"  {line}")


def _confirm_select_cost(args: argparse.Namespace, rows: int, candidates: int) -> None:
    """State the projected cost (core.select.cost) of a selection past a minute, before the pool loads;
    refuse one past ``cost.CONFIRM_SECONDS`` without --yes, naming the bounded form. The dataset's rows stand
    for the pool (the kept ones are fewer): an upper bound, known without loading anything."""
    from core.select import cost
    from core.select.pool import resolve_budget

    budget = resolve_budget(args.budget, rows, rows)
    seconds = cost.projected_seconds(args.strategy, rows, budget, candidates)
    if seconds is not None and seconds <= cost.ANNOUNCE_SECONDS:
        return
    if seconds is None and rows <= cost.CALIBRATION_ROWS:  # not measured, but no bigger than the benchmark's pool
        return
    print(cost.cost_line(args.strategy, rows, budget, candidates))
    if cost.needs_confirmation(args.strategy, rows, budget, candidates) and not args.yes:
        raise ValueError(
            f"{args.strategy} would run for longer than {cost.CONFIRM_SECONDS:.0f} s: add --yes to run it, "
            f"or use {cost.bounded_form(args.strategy, rows, budget)}"
        )


def cmd_gradients(args: argparse.Namespace) -> int:
    from core.gradients.target_report import describe_paths, require_responses

    store = _store(args)
    dataset = _dataset(store, args)
    targets = describe_paths(args.target)  # what each target holds, before the model loads
    require_responses(targets)  # one without responses has no task gradient: refused
    _print_targets(targets)
    report = _compute_gradients(store, dataset, args.target, _pairs(args.param, "--param"), _engine(args))
    speed = f", {report['examples_per_second']} examples/s" if report["examples_per_second"] else " (cached)"
    print(f"gradient features of {report['rows']} examples, d={report['d']}{speed}; graph stored")
    for name, key in report["targets"].items():
        print(f"target {name}: features {key}")
    print(f"done in {report['seconds']} s")
    return 0


def cmd_hidden_states(args: argparse.Namespace) -> int:
    from core.hidden.job import HiddenStatesJob
    from core.hidden.pipeline import compute_hidden_states
    from core.progress import TqdmProgress

    store = _store(args)
    dataset = _dataset(store, args)
    settings = {"model": args.model, "max_length": args.max_length, "precision": args.precision}
    config = {name: value for name, value in settings.items() if value is not None}
    spec = HiddenStatesJob(dataset.name, config, tuple(args.target), args.limit)
    spec.validate(store.workspace)  # a bad setting or target file, before any model loads
    engine = _engine(args)
    progress = TqdmProgress()
    try:
        report = compute_hidden_states(
            store, dataset, spec.hidden_config(), spec.targets, limit=spec.limit, progress=progress, engine=engine
        )
    except BaseException:
        progress.close(discard=True)
        raise
    progress.close()
    _print_hidden_states(report)
    return 0


def _print_hidden_states(report: dict[str, Any]) -> None:
    """What a hidden-states run computed and what it found done already."""
    if report["cached"]:
        print(f"hidden states of {report['rows']} examples: already computed (d={report['d']}, {report['precision']})")
    else:
        speed = f" at {report['examples_per_second']} examples/s" if report["examples_per_second"] else ""
        print(
            f"hidden states: computed {report['computed']} examples{speed}, reused {report['reused']} "
            f"from an earlier run, of {report['rows']} ({report['precision']})"
        )
        if report["left"]:
            print(f"{report['left']} examples left: run the command again to continue")
        else:
            print(f"stored for rds_plus: d={report['d']}")
    for name, key in report["targets"].items():
        print(f"target {name}: features {key}")
    _print_engine(report["engine"])
    print(f"done in {report['seconds']} s")


def _print_targets(reports: list[Any]) -> None:
    """Each target's rows, responses and response length on stdout; what to watch out for on stderr."""
    for report in reports:
        print(report.line())
        for note in report.warnings():
            print(f"warning: {note}", file=sys.stderr)


def _compute_gradients(
    store: Any, dataset: Any, targets: list[str], params: dict[str, str], engine: Any = None
) -> dict[str, Any]:
    """Compute in this process what a ``gradients`` job computes, checked by the same spec first."""
    import dataclasses

    from core.gradients.job import GradientsJob
    from core.gradients.pipeline import GradientConfig, compute_gradients
    from core.progress import TqdmProgress

    types = {f.name: type(f.default) for f in dataclasses.fields(GradientConfig)}
    config = {name: types[name](value) if name in types else value for name, value in params.items()}
    spec = GradientsJob(dataset=dataset.name, config=config, targets=tuple(targets))
    spec.validate(store.workspace)  # an unknown parameter or a bad target file, before any model loads
    progress = TqdmProgress()
    try:
        config = spec.gradient_config(store, dataset.dataset_id)
        report = compute_gradients(store, dataset, config, targets, progress, engine=engine)
    except BaseException:
        progress.close(discard=True)
        raise
    progress.close()
    return report


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{flag} takes NAME=VALUE, not {item!r}")
        pairs[name.strip()] = value.strip()
    return pairs


def _train_config(items: list[str]) -> dict[str, Any]:
    import dataclasses

    from core.train.trainer import TrainConfig

    types = {f.name: type(f.default) for f in dataclasses.fields(TrainConfig)}
    config: dict[str, Any] = {}
    for name, value in _pairs(items, "--train").items():
        if name not in types:
            raise ValueError(f"unknown training parameter {name!r}; known: {', '.join(sorted(types))}")
        config[name] = value if types[name] is str else types[name](value)
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from core.runs.loops import LOOPS
    from core.runs.run import RunSpec, launch_run

    store = _store(args)
    dataset = _dataset(store, args)
    if args.strategy and args.budget is None:
        raise ValueError("--strategy needs --budget")
    config = {"seed": args.seed, **_train_config(args.train)}
    loop = args.strategy if args.strategy in LOOPS.names() else "none"
    params = _pairs(args.param, "--param")
    spec = RunSpec(
        dataset=dataset.name,
        selection_id=args.selection,
        strategy=None if loop != "none" else args.strategy,
        strategy_params=params if loop == "none" else {},
        loop=loop,
        rounds=args.rounds,
        loop_params=LOOPS.parse(loop, params) if loop != "none" else {},
        budget=args.budget,
        seed=args.seed,
        config=config,
        eval_paths=[str(Path(path).resolve()) for path in args.eval],
        eval_limit=args.eval_limit,
        generate=not args.no_generate,
        max_new_tokens=args.max_new_tokens,
        name=args.name,
    )
    run_id = launch_run(store.workspace, spec)
    print(f"run {run_id} started; follow it with `python -m core runs` or on the Runs page")
    return _follow(store.workspace, run_id) if args.wait else 0


def _follow(workspace: Path, run_id: str) -> int:
    import time

    from tqdm import tqdm

    from core import jobs

    bar = tqdm(total=1, unit="step")
    status = jobs.read_status(workspace, run_id)
    while status.active:
        bar.set_description(status.stage or status.state)
        bar.total, bar.n = max(status.total, 1), status.done
        if status.loss is not None:
            bar.set_postfix(loss=f"{status.loss:.3f}")
        bar.refresh()
        time.sleep(1.0)
        status = jobs.read_status(workspace, run_id)
    bar.close()
    print(f"run {run_id}: {status.state}" + (f" ({status.error})" if status.error else ""))
    return 0 if status.state == "done" else 1


def cmd_runs(args: argparse.Namespace) -> int:
    from core import jobs
    from core.runs.run import resume_run, run_rows

    workspace = _store(args).workspace
    if args.resume:
        resume_run(workspace, args.resume)
        print(f"run {args.resume} resumed from its last checkpoint")
        return 0
    if args.cancel:
        jobs.request_cancel(workspace, args.cancel)
        print(f"asked run {args.cancel} to stop; it saves a checkpoint first")
        return 0
    rows = run_rows(workspace)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    elif not rows:
        print("no runs yet; start one with `python -m core run`")
    else:
        import pandas as pd

        print(pd.DataFrame(rows).drop(columns=["error"]).to_string(index=False))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from core.runs.run import compare_runs

    table = compare_runs(_store(args).workspace, args.run_ids)
    if args.json:
        print(json.dumps(table.to_dict(orient="records"), indent=2, default=str))
    elif table.empty:
        print("none of these runs has evaluation results yet")
    else:
        print(table.to_string(index=False))
    return 0


def cmd_selections(args: argparse.Namespace) -> int:
    from core.select.compare import compare
    from core.storage import selections

    store = _store(args)
    dataset = _dataset(store, args)
    if args.compare:
        _print_comparison(compare(store, dataset, *args.compare), args.json)
        return 0
    frame = selections.listing(store, dataset.dataset_id)
    if args.json:
        print(json.dumps(frame.to_dict(orient="records"), indent=2, default=str))
    elif frame.empty:
        print(f"no saved selections for {dataset.name!r}; run `python -m core select` first")
    else:
        print(frame.drop(columns=["pool_hash"]).to_string(index=False))
    return 0


def _print_comparison(report: dict[str, Any], as_json: bool) -> None:
    """Two selections side by side (core/select/compare.py): overlap, the measures table, per-cluster and
    per-source shares."""
    import dataclasses

    tables = {name: report.pop(name) for name in ("metrics", "per_cluster", "sources")}
    profiles = report.pop("profiles")
    if as_json:
        records = {name: None if t is None else t.to_dict(orient="records") for name, t in tables.items()}
        out = {**report, "profiles": [dataclasses.asdict(p) for p in profiles], **records}
        print(json.dumps(out, indent=2, default=str))
        return
    first, second = report["first"], report["second"]
    print(
        f"#{first['id']} {first['size']} rows, #{second['id']} {second['size']} rows; "
        f"shared {report['shared']}, only first {report['only_first']}, only second {report['only_second']}, "
        f"Jaccard {report['jaccard']:.3f}\n"
    )
    print(tables["metrics"].to_string(index=False))
    print(f"\nper cluster at k={report['k']} (counts and shares of each selection):")
    print(tables["per_cluster"].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    if tables["sources"] is not None:
        print("\nshares by source:")
        print(tables["sources"].to_string(index=False, float_format=lambda x: f"{x:.3f}"))


def _registries() -> dict[str, Any]:
    """Each plugin family's registry (imported here: the loops and strategies pull in pandas and sklearn)."""
    from core.cluster.clustering import CLUSTERERS
    from core.cluster.reduce import REDUCERS
    from core.embed.embedders import EMBEDDERS
    from core.runs.loops import LOOPS
    from core.score.scorers import SCORERS
    from core.select.strategies import STRATEGIES

    registries = (STRATEGIES, LOOPS, SCORERS, EMBEDDERS, CLUSTERERS, REDUCERS)
    return dict(zip(FAMILIES, registries, strict=True))


def cmd_params(args: argparse.Namespace) -> int:
    registries = _registries()
    listing: dict[str, dict[str, Any]] = {}
    for family in [args.family] if args.family else FAMILIES:
        registry = registries[family]
        listing[family] = {}
        for name in registry.names():
            listing[family][name] = {"summary": registry.summary(name), "params": registry.params(name)}
    if args.json:
        plain = {
            family: {
                name: {"summary": entry["summary"], "params": [_param_json(p) for p in entry["params"]]}
                for name, entry in members.items()
            }
            for family, members in listing.items()
        }
        print(json.dumps(plain, indent=2))
        return 0
    for family, members in listing.items():
        print(f"{family}:")
        for name, entry in members.items():
            print(f"  {name}: {entry['summary']}")
            for p in entry["params"]:
                print(f"      {p.describe()}")
    return 0


def _param_json(p: Any) -> dict[str, Any]:
    return {
        "name": p.name,
        "type": p.kind.__name__,
        "default": p.default,
        "choices": list(p.choices),
        "low": p.low,
        "high": p.high,
        "optional": p.optional,
        "help": p.help,
    }


COMMANDS = {
    "prepare": cmd_prepare,
    "datasets": cmd_datasets,
    "clusters": cmd_clusters,
    "veto": cmd_veto,
    "tag": cmd_tag,
    "rename": cmd_rename,
    "merge": cmd_merge,
    "split": cmd_split,
    "weight": cmd_weight,
    "export": cmd_export,
    "history": cmd_history,
    "undo": cmd_undo,
    "revert": cmd_revert,
    "index": cmd_index,
    "score": cmd_score,
    "scores": cmd_scores,
    "duplicates": cmd_duplicates,
    "select": cmd_select,
    "gradients": cmd_gradients,
    "hidden-states": cmd_hidden_states,
    "selections": cmd_selections,
    "run": cmd_run,
    "runs": cmd_runs,
    "compare": cmd_compare,
    "params": cmd_params,
}


def main(argv: list[str] | None = None) -> int:
    """Run one command; the one place where an error becomes its ``error: ...`` line and exit status."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # before OSError, which it is: the reader (`| head`) has all it wanted
        return _stdout_gone()
    except (ValueError, LookupError, RuntimeError, OSError) as exc:
        print(f"error: {_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; work committed so far is kept and a rerun resumes from there", file=sys.stderr)
        return 130


def _message(exc: BaseException) -> str:
    """One line for the user: a KeyError's own text without its quotes, an OSError's reason and path."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)


def _stdout_gone() -> int:
    """Point stdout at /dev/null, so the interpreter's final flush at exit does not hit the closed pipe again
    and print its own complaint; 141 is the status a shell reports for a tool stopped by SIGPIPE."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no real file (captured in a test): nothing will flush to a pipe
        pass
    return 141
