"""Fine-tuning runs: a run's spec and execution, the iterative select-and-train loops, their round files."""
