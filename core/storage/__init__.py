"""Storage: the workspace's DuckDB file (schema, locking) and the only code that writes SQL."""
