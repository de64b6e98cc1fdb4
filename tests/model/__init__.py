"""The model parts: backbone, dual controller, degradations, losses, sampler (src/longvie/model)."""
