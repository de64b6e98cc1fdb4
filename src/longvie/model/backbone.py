"""The Wan image-to-video backbone from diffusers: DiT, VAE and the 36-channel input.

``model.pretrained`` set: every part comes from that diffusers folder or hub id through
``from_pretrained`` (production: Wan2.1-I2V-14B-480P). Empty: the parts are built from the sizes
in ``model.transformer`` / ``model.vae`` and trained by the pipeline (tiny, smoke).

The I2V input (DESIGN.md §3.1) is ``[noisy latent 16 | mask 4 | condition latent 16]``: the mask
marks the conditioning frame (pixel frame 0, repeated 4x to fill the first latent frame's four
temporal slots, as the Wan pipeline does), the condition latent holds the encoded first frame.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from longvie.config.schema import ModelConfig
from longvie.errors import LongvieError

LATENT_CHANNELS = 16
MASK_CHANNELS = 4
TEMPORAL_FACTOR = 4
SPATIAL_FACTOR = 8
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(model: ModelConfig) -> torch.dtype:
    return DTYPES[model.dtype]


def transformer_kwargs(model: ModelConfig) -> dict:
    """``WanTransformer3DModel`` constructor arguments from the config."""
    kwargs = asdict(model.transformer)
    kwargs["patch_size"] = tuple(kwargs["patch_size"])
    return kwargs


def build_transformer(model: ModelConfig):
    """The DiT: pretrained from ``model.pretrained``/transformer, else freshly initialised."""
    from diffusers import WanTransformer3DModel

    if model.pretrained:
        return _pretrained(WanTransformer3DModel, model, "transformer")
    return WanTransformer3DModel(**transformer_kwargs(model))


def build_vae(model: ModelConfig):
    """The causal video VAE (8x space, 4x time, 16 channels)."""
    from diffusers import AutoencoderKLWan

    if model.pretrained:
        return _pretrained(AutoencoderKLWan, model, "vae")
    return AutoencoderKLWan(**asdict(model.vae))


def _pretrained(cls, model: ModelConfig, subfolder: str):
    """``cls.from_pretrained`` with a clear error naming the key when the weights are missing."""
    try:
        return cls.from_pretrained(model.pretrained, subfolder=subfolder,
                                   torch_dtype=torch_dtype(model))
    except (OSError, ValueError) as error:
        raise LongvieError(
            f"model.pretrained={model.pretrained!r}: cannot load {subfolder}/ ({error}); set a "
            "local diffusers Wan folder, a cached hub id, or leave it empty to train from scratch"
        ) from error


def latent_frames(pixel_frames: int) -> int:
    if pixel_frames < 1 or (pixel_frames - 1) % TEMPORAL_FACTOR:
        raise ValueError(f"{pixel_frames} pixel frames: the Wan VAE needs 4k+1")
    return (pixel_frames - 1) // TEMPORAL_FACTOR + 1


def first_frame_mask(batch: int, frames: int, height: int, width: int,
                     device=None, dtype=torch.float32) -> torch.Tensor:
    """(B, 4, F, h, w): 1 on the four temporal slots of latent frame 0, 0 elsewhere."""
    mask = torch.zeros(batch, MASK_CHANNELS, frames, height, width, device=device, dtype=dtype)
    mask[:, :, 0] = 1.0
    return mask


def i2v_input(noisy: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """``[noisy 16 | mask 4 | condition 16]`` along channels; shapes (B, 16, F, h, w)."""
    if noisy.shape != condition.shape or noisy.shape[1] != LATENT_CHANNELS:
        raise ValueError(f"noisy {tuple(noisy.shape)} and condition {tuple(condition.shape)} "
                         f"must both be (B, {LATENT_CHANNELS}, F, h, w)")
    batch, _, frames, height, width = noisy.shape
    mask = first_frame_mask(batch, frames, height, width, noisy.device, noisy.dtype)
    return torch.cat([noisy, mask, condition], dim=1)


class LatentCodec:
    """VAE encode/decode in the normalised latent space the DiT works in.

    Latents are ``(mean - latents_mean) / latents_std`` of the posterior (its mode, as the Wan
    pipeline encodes conditions); videos are (B, 3, T, H, W) in [-1, 1].
    """

    def __init__(self, vae) -> None:
        self.vae = vae
        config = vae.config
        shape = (1, config.z_dim, 1, 1, 1)
        self._mean = torch.tensor(config.latents_mean).view(shape)
        self._std = torch.tensor(config.latents_std).view(shape)

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._mean.to(like), self._std.to(like)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        posterior = self.vae.encode(video).latent_dist
        mean, std = self._stats(posterior.mode())
        return (posterior.mode() - mean) / std

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(latents)
        return self.vae.decode(latents * std + mean).sample.clamp(-1.0, 1.0)

    def condition(self, first_frame: torch.Tensor, pixel_frames: int, mode: str) -> torch.Tensor:
        """The condition latent (B, 16, F, h, w) of a first frame (B, 3, H, W) in [-1, 1].

        ``joint`` encodes the frame followed by black frames (the Wan pipeline's convention,
        required by pretrained weights); ``first_frame`` encodes the frame alone and leaves the
        later latent frames zero (one image encode: the CPU profiles train with it).
        """
        frames = latent_frames(pixel_frames)
        if mode == "joint":
            batch, channels, height, width = first_frame.shape
            video = first_frame.new_zeros(batch, channels, pixel_frames, height, width)
            video[:, :, 0] = first_frame
            return self.encode(video)
        if mode == "first_frame":
            latent = self.encode(first_frame.unsqueeze(2))
            padded = latent.new_zeros(*latent.shape[:2], frames, *latent.shape[3:])
            padded[:, :, :1] = latent
            return padded
        raise ValueError(f"unknown condition encoding {mode!r}")
