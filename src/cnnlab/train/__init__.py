"""Training: config, exact gradient accumulation, the loop, checkpoints, runs, evaluation."""
