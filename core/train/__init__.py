"""Train: one LoRA or full fine-tuning loop, and evaluation of a model on evaluation sets."""
