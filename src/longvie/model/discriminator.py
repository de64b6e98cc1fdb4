"""A small PatchGAN discriminator for the VAE decoder's adversarial fine-tuning.

Trained with L1 alone, the tiny VAE reconstructs held-out frames at 28 dB but keeps only 28 % of
their Laplacian variance: the pixel-level texture (surface grain, stripe edges) cannot be stored
at 12x compression, and a regression loss averages it away. A patch discriminator lets the decoder
synthesise plausible texture instead (taming-transformers / Stable Diffusion's VAE recipe, here
without the LPIPS term, whose VGG weights cannot be downloaded). It judges single frames.
"""

from __future__ import annotations

from torch import nn


class PatchDiscriminator(nn.Module):
    """(N, 3, H, W) frames in [-1, 1] -> (N, 1, H/4, W/4) real/fake logits per patch."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.GroupNorm(8, 2 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 3, 1, 1), nn.GroupNorm(8, 4 * width),
            nn.LeakyReLU(0.2),
            nn.Conv2d(4 * width, 1, 3, 1, 1),
        )

    def forward(self, frames):
        return self.layers(frames)
