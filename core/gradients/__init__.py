"""Gradient features, the gradient graph and gradient-based selection (LESS, G2IS)."""
