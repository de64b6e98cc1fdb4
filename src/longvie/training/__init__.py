"""Training: clip data, step-indexed sampling, the Lightning trainer and the training steps."""
