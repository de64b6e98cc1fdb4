"""Training steps: base, stages 1-3, pretraining, DDP (src/longvie/training)."""
