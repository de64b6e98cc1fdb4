"""The Wan image-to-video backbone from diffusers: DiT, VAE and the 36-channel input.

``model.pretrained`` set: every part comes from that diffusers folder or hub id through
``from_pretrained`` (production: Wan2.1-I2V-14B-480P). Empty: the parts are built from the sizes
in ``model.transformer`` / ``model.vae`` and trained by the pipeline (tiny, smoke).

The I2V input is ``[noisy latent 16 | mask 4 | condition latent 16]``: the mask
marks the conditioning frame (pixel frame 0, repeated 4x to fill the first latent frame's four
temporal slots, as the Wan pipeline does), the condition latent holds the encoded first frame.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from longvie.config.schema import ModelConfig
from longvie.errors import LongvieError

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
        return load_part(WanTransformer3DModel, model.pretrained, "transformer", torch_dtype(model))
    return WanTransformer3DModel(**transformer_kwargs(model))


def build_vae(model: ModelConfig):
    """The causal video VAE (4x in time; 8x or 4x in space and 16 or more channels by config)."""
    from diffusers import AutoencoderKLWan

    if model.pretrained:
        return load_part(AutoencoderKLWan, model.pretrained, "vae", torch_dtype(model))
    return AutoencoderKLWan(**asdict(model.vae))


def load_part(cls, source: str, subfolder: str, dtype: torch.dtype = torch.float32):
    """``cls.from_pretrained(source, subfolder=...)`` with a clear error naming the source."""
    try:
        return cls.from_pretrained(source, subfolder=subfolder, torch_dtype=dtype)
    except (OSError, ValueError) as error:
        raise LongvieError(
            f"model source {source!r} (model.pretrained or a trained stage): cannot load "
            f"{subfolder}/ ({error}); give a local diffusers Wan folder, a cached hub id, or "
            "leave model.pretrained empty to train from scratch"
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
    """``[noisy z | mask 4 | condition z]`` along channels; shapes (B, z, F, h, w).

    z is the VAE's latent channel count (``model.vae.z_dim``: Wan 2.1's 16, Wan 2.2's 48)."""
    if noisy.shape != condition.shape:
        raise ValueError(f"noisy {tuple(noisy.shape)} and condition {tuple(condition.shape)} "
                         "must both be (B, z, F, h, w)")
    batch, _, frames, height, width = noisy.shape
    mask = first_frame_mask(batch, frames, height, width, noisy.device, noisy.dtype)
    return torch.cat([noisy, mask, condition], dim=1)


def unconditioned_input(noisy: torch.Tensor) -> torch.Tensor:
    """``[noisy z | 0 | 0]``: no known frame (the text-to-image use of the I2V model)."""
    zeros = noisy.new_zeros(noisy.shape[0], MASK_CHANNELS + noisy.shape[1], *noisy.shape[2:])
    return torch.cat([noisy, zeros], dim=1)


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
        """The condition latent (B, z, F, h, w) of a first frame (B, 3, H, W) in [-1, 1].

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


def condition_of(latents: torch.Tensor) -> torch.Tensor:
    """The first-frame condition latent: latent frame 0, zeros after (``first_frame`` mode)."""
    condition = torch.zeros_like(latents)
    condition[:, :, :1] = latents[:, :, :1]
    return condition


def control_input(latents: torch.Tensor) -> torch.Tensor:
    """A control video's latents in the 36-channel layout: [latent | mask | first latent + 0]."""
    return i2v_input(latents, condition_of(latents))


def history_input(history: torch.Tensor) -> torch.Tensor:
    """History latents (B, 16, F_h, h, w) as known frames: [latent | mask = 1 | latent]."""
    mask = history.new_ones(history.shape[0], 4, *history.shape[2:])
    return torch.cat([history, mask, history], dim=1)
