"""UI-free core of the curation studio: ingest, storage, models, algorithms and jobs.

Importing ``core`` stays light (no torch, no duckdb); heavy imports live in the functions that need them.
"""

from __future__ import annotations

__version__ = "0.1.0"
