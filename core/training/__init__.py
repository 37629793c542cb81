"""Fine-tuning runs: training loop, evaluation, iterative selection loops."""
