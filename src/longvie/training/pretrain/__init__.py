"""``longvie pretrain``: the corpus, the tiny base (VAE, then DiT + caption encoder) and the
control weights (DiT and dual controller together), each part resumable, with its evaluation."""
