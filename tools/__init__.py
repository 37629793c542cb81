"""Maintenance scripts for the repository itself (not part of the installed package): ``python -m tools.NAME``."""
