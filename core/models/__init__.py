"""Models: device choice, embedders, and defaults from the packaged model weights."""
