"""``longvie train stage=vae|base``: the pipeline's own VAE and base DiT (or the pretrained one
loaded and checked), and the cached latents every later stage reads."""
