"""Algorithms: clusterers, k diagnostics, cluster labels and 2-D reducers (pure numpy in, numpy out)."""
