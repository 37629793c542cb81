"""Gradient features (LoRA gradients, projected) and the gradient graph over them, with their views."""
