"""UI-free core of the curation studio, one package per pipeline stage.

ingest -> embed -> cluster -> score -> gradients -> select -> train -> export, with ``storage`` (the only
SQL), ``models`` (device, loading, LM passes), ``jobs`` (background work) and ``runs`` (fine-tuning runs)
beside them; docs/architecture.md draws the map and the dependency rule.

Importing ``core`` stays light (no torch, no duckdb); heavy imports live in the functions that need them.
"""

from __future__ import annotations

__version__ = "0.1.0"
