"""Run directories: config, checkpoints, loading a trained model, evaluation and prediction."""
