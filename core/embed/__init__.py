"""Embed: sentence embedders behind one protocol and registry (packaged model, local path, hub id)."""
