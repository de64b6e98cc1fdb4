"""Weight-free video metrics (SSIM, PSNR, sharpness, seams, drift, track error): pure functions
shared by the training evaluations and the benchmark, so neither imports the other."""
