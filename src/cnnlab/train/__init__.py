"""Training: exact gradient accumulation, the loop, fine-tuning phases, the feature cache, DDP."""
