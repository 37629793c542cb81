"""What a trainer needs beside an export to train on it: LLaMA-Factory's ``dataset_info.json`` entry and the
``datasets:`` block of an Axolotl config.

Both are derived from the export's manifest alone (its format, the dataset's shape and column mapping, the
written file), so they can be written with the export or later from a past export. Paths are relative to the
export's folder: LLaMA-Factory resolves ``file_name`` against its ``dataset_dir`` (the folder holding
``dataset_info.json``, here the export's own), and Axolotl resolves ``path`` against the folder it is run from.

The schemas follow LLaMA-Factory's data/README (alpaca columns ``prompt``/``query``/``response``/``system``;
``formatting: sharegpt`` with ``tags`` naming the role and content keys and the role values) and Axolotl's
dataset docs (``type: alpaca``; ``type: chat_template`` with ``field_messages``, ``message_property_mappings``
and ``roles``; a user-defined instruction type for other column names; ``ds_type`` for a file, none for a
``save_to_disk`` folder, which Axolotl opens with ``load_from_disk``). docs/user-guide.md shows both under
"Training on an export".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core import atomic
from core.errors import UnusablePath
from core.export.rows import SYSTEM_FIELD, SourceShape

LLAMAFACTORY_FILE = "dataset_info.json"
AXOLOTL_SUFFIX = ".axolotl.yaml"

_MESSAGES_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}
_SHAREGPT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "system_tag": "system",
}


def entry_name(out_path: Path) -> str:
    """The export's name (its manifest's, and its entry's in the trainers' files): the file or folder name
    without ``.jsonl``; another suffix stays, so ``data.jsonl`` and ``data.parquet`` are two names."""
    return out_path.name.removesuffix(".jsonl")


def axolotl_path_for(out_path: Path) -> Path:
    """``data.jsonl`` -> ``data.axolotl.yaml`` beside it (``data.parquet`` -> ``data.parquet.axolotl.yaml``)."""
    return out_path.with_name(entry_name(out_path) + AXOLOTL_SUFFIX)


def llamafactory_path_for(out_path: Path) -> Path:
    return out_path.parent / LLAMAFACTORY_FILE


def check_llamafactory(out_path: Path) -> None:
    """Refuse, before anything is written, a ``dataset_info.json`` beside the export that cannot be merged into."""
    _read_dataset_info(llamafactory_path_for(out_path))


def _read_dataset_info(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UnusablePath(f"{path} is not readable JSON ({exc}); fix or move it, then export again") from None
    if not isinstance(info, dict):
        raise UnusablePath(f"{path} holds no JSON object of datasets; fix or move it, then export again")
    return info


def data_shape(manifest: dict[str, Any]) -> str:
    """The shape of the written rows: the format's for chat formats, else the dataset's own."""
    fmt = manifest["format"]["name"]
    return fmt if fmt in ("messages", "sharegpt") else str(manifest["dataset"]["shape"])


def _source(manifest: dict[str, Any]) -> SourceShape:
    return SourceShape(manifest["dataset"]["shape"], manifest["dataset"].get("mapping") or {})


def _relative_data(manifest: dict[str, Any]) -> str:
    """The data file, relative to the export's folder (a folder export: its one data file inside)."""
    name = str(manifest["output"]["file"])
    data_file = manifest["format"].get("data_file")
    return f"{name}/{data_file}" if data_file else name


def llamafactory_entry(manifest: dict[str, Any]) -> dict[str, Any]:
    """The ``dataset_info.json`` entry of an export (LLaMA-Factory's data/README)."""
    shape = data_shape(manifest)
    entry: dict[str, Any] = {"file_name": _relative_data(manifest)}
    if shape in ("messages", "sharegpt"):
        key, tags = ("messages", _MESSAGES_TAGS) if shape == "messages" else ("conversations", _SHAREGPT_TAGS)
        entry |= {"formatting": "sharegpt", "columns": {"messages": key}, "tags": dict(tags)}
        if manifest["format"].get("system_field"):  # used when the turns do not start with a system turn
            entry["columns"]["system"] = SYSTEM_FIELD
        return entry
    instruction, input_field, output = _source(manifest).alpaca_fields()
    columns = {"prompt": instruction, "query": input_field, "response": output}
    if manifest["format"].get("system_field"):
        columns["system"] = SYSTEM_FIELD
    entry["columns"] = {key: value for key, value in columns.items() if value}
    return entry


def axolotl_dataset(manifest: dict[str, Any]) -> dict[str, Any]:
    """One item of an Axolotl config's ``datasets:`` list for an export (Axolotl's dataset-formats docs)."""
    shape, fmt = data_shape(manifest), manifest["format"]["name"]
    item: dict[str, Any] = {"path": str(manifest["output"]["file"])}
    if fmt != "hf":  # a folder is opened with load_from_disk; a file needs its type
        item["ds_type"] = "parquet" if fmt == "parquet" else "json"
    if shape == "messages":
        item |= {
            "type": "chat_template",
            "field_messages": "messages",
            "message_property_mappings": {"role": "role", "content": "content"},
        }
    elif shape == "sharegpt":
        item |= {
            "type": "chat_template",
            "field_messages": "conversations",
            "message_property_mappings": {"role": "from", "content": "value"},
            "roles": {"user": ["human"], "assistant": ["gpt"], "system": ["system"]},
        }
    elif shape == "alpaca":
        item["type"] = "alpaca"
    else:
        item["type"] = _mapped_type(_source(manifest))
    return item


def _mapped_type(source: SourceShape) -> dict[str, str]:
    """Axolotl's user-defined instruction type for columns with other names, prompted as its alpaca type is."""
    from core.models.passes import ALPACA_PROMPT_INPUT, ALPACA_PROMPT_NO_INPUT

    instruction, input_field, output = source.alpaca_fields()
    fields = {"field_instruction": instruction, "field_output": output}
    if input_field:
        fields["field_input"] = input_field
    return {**fields, "format": ALPACA_PROMPT_INPUT + "\n", "no_input_format": ALPACA_PROMPT_NO_INPUT + "\n"}


def write_llamafactory(out_path: Path, manifest: dict[str, Any]) -> Path:
    """Add (or replace) the export's entry in ``dataset_info.json`` beside it, keeping every other entry."""
    path = llamafactory_path_for(out_path)
    info = _read_dataset_info(path)
    info[entry_name(out_path)] = llamafactory_entry(manifest)
    atomic.write_text(path, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return path


def write_axolotl(out_path: Path, manifest: dict[str, Any]) -> Path:
    """Write ``<name>.axolotl.yaml`` beside the export: a ``datasets:`` block to paste into an Axolotl config."""
    import yaml

    path = axolotl_path_for(out_path)
    header = (
        f"# Axolotl datasets block for {manifest['output']['file']} (curation-studio export, "
        f"format {manifest['format']['name']}).\n"
        "# The path is relative to this folder: run axolotl here, or put this folder's path in front of it.\n"
    )
    body = yaml.safe_dump({"datasets": [axolotl_dataset(manifest)]}, sort_keys=False, allow_unicode=True)
    atomic.write_text(path, header + body)
    return path
