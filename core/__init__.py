"""UI-free core of the curation studio, one package per pipeline stage.

ingest -> embed -> cluster -> score -> gradients -> select -> train -> export, with ``storage`` (the only
SQL), ``models`` (device, loading, LM passes), ``jobs`` (background work) and ``runs`` (fine-tuning runs)
beside them; docs/architecture.md draws the map and the dependency rule.

Importing ``core`` stays light (no torch, no duckdb); heavy imports live in the functions that need them.
The Python API (``from core import Workspace``; docs/python-api.md) is its public face, loaded on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

__all__ = ["Dataset", "Run", "Selection", "Workspace", "__version__"]

_API_NAMES = frozenset({"Dataset", "Run", "Selection", "Workspace"})


def __getattr__(name: str) -> object:
    """The API's names, imported when first asked for (so ``import core.cli`` does not load the facade)."""
    if name in _API_NAMES:
        # by name, not an import statement: the package's own module sits below every stage, and a stage that
        # reads ``core.__version__`` must not be seen (by import-linter) as importing the API above it
        return getattr(importlib.import_module("core.api"), name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")
