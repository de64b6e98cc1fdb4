"""One interface for every depth model behind the ``estimated`` controls.

Each estimator maps RGB frames to disparity (larger = nearer) at the input resolution, finite
and > 0, so the control builder can take logs and global percentiles without special cases.
torch and transformers are imported inside functions: importing this module stays cheap for the
CLI and the orchestration code that only needs the names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from longvie.config.schema import DepthModelConfig
from longvie.errors import LongvieError

if TYPE_CHECKING:
    import torch

# Smallest disparity an estimator returns: zero would break the logs and inverse depths later.
EPSILON = 1e-6
CONFIG_KEY = "controls.depth.model"
KINDS = ("longvie", "transformers")
OUTPUTS = ("disparity", "depth")


class DisparityEstimator(Protocol):
    """Anything that turns frames into disparity."""

    def predict(self, frames: np.ndarray) -> np.ndarray:
        """(B,H,W,3) uint8 RGB -> (B,H,W) float32 disparity, finite and > 0."""
        ...


def _check_frames(frames: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise LongvieError(
            f"depth input must be (B,H,W,3) uint8 RGB, got {frames.shape} {frames.dtype}"
        )


def _finish(disparity: torch.Tensor) -> np.ndarray:
    """Float32 numpy clamped to ``EPSILON``; NaN/inf means a broken model and is an error."""
    import torch

    disparity = disparity.float()
    if not bool(torch.isfinite(disparity).all()):
        raise LongvieError("the depth model produced NaN or inf: its weights or inputs are broken")
    return disparity.clamp_min(EPSILON).cpu().numpy().astype(np.float32, copy=False)


class LongvieDepthEstimator:
    """The pipeline's own :class:`~longvie.controls.depth_net.DepthNet`."""

    def __init__(self, cfg: DepthModelConfig) -> None:
        import torch

        from longvie.controls.depth_net import DepthNet

        self.device = torch.device(cfg.device)
        self.batch_size = cfg.batch_size
        self.model = DepthNet.from_pretrained(cfg.model).to(self.device)

    def predict(self, frames: np.ndarray) -> np.ndarray:
        import torch

        _check_frames(frames)
        out = []
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                chunk = np.ascontiguousarray(frames[start : start + self.batch_size])
                rgb = torch.from_numpy(chunk).to(self.device).permute(0, 3, 1, 2).float() / 255.0
                out.append(_finish(self.model(rgb)))
        return np.concatenate(out) if out else np.zeros(frames.shape[:3], np.float32)


class TransformersDepthEstimator:
    """Any transformers depth-estimation model (Depth Anything V2, DPT, ZoeDepth ...).

    ``output: disparity`` (relative models) is clamped at 0 and shifted by ``EPSILON``: relative
    disparity is defined only up to an affine map, and the control's global p5/p95 normalisation
    is affine-invariant too, so one constant shift for every frame changes nothing downstream.
    A data-dependent shift (say, minus each batch's minimum) would differ between batches of one
    video and break that, hence the clamp; Depth Anything's head ends in a ReLU, so for it the
    clamp never bites. ``output: depth`` (metric models) is inverted: 1 / max(depth, eps).
    """

    def __init__(self, cfg: DepthModelConfig) -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        kwargs = {"local_files_only": True} if _offline_hub_id(cfg.model) else {}
        self.processor = AutoImageProcessor.from_pretrained(cfg.model, **kwargs)
        model = AutoModelForDepthEstimation.from_pretrained(cfg.model, **kwargs)
        self.device = torch.device(cfg.device)
        self.model = model.to(self.device).eval()
        self.batch_size = cfg.batch_size
        self.output = cfg.output

    def predict(self, frames: np.ndarray) -> np.ndarray:
        import torch

        _check_frames(frames)
        out = []
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                out.append(_finish(self._predict_batch(frames[start : start + self.batch_size])))
        return np.concatenate(out) if out else np.zeros(frames.shape[:3], np.float32)

    def _predict_batch(self, frames: np.ndarray) -> torch.Tensor:
        import torch.nn.functional as F

        inputs = self.processor(
            images=list(frames), return_tensors="pt", input_data_format="channels_last"
        )
        pixels = inputs["pixel_values"].to(self.device, dtype=self.model.dtype)
        predicted = self.model(pixel_values=pixels).predicted_depth.float()
        if predicted.ndim == 3:
            predicted = predicted[:, None]
        # Bilinear, not the processors' bicubic post-processing, which overshoots below zero.
        resized = F.interpolate(
            predicted, size=frames.shape[1:3], mode="bilinear", align_corners=False
        )[:, 0]
        if self.output == "depth":
            return 1.0 / resized.clamp_min(EPSILON)
        return resized.clamp_min(0.0) + EPSILON


def _hub_offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _offline_hub_id(model: str) -> bool:
    """A hub id while offline: load from the cache only, so a miss fails at once, no retries."""
    return not Path(model).is_dir() and _hub_offline()


def _load(cfg: DepthModelConfig) -> DisparityEstimator:
    if cfg.kind == "longvie":
        return LongvieDepthEstimator(cfg)
    return TransformersDepthEstimator(cfg)


def load_depth_estimator(cfg: DepthModelConfig) -> DisparityEstimator:
    """The estimator ``cfg`` names; every failure is a LongvieError naming the config key."""
    if cfg.kind not in KINDS:
        raise LongvieError(f"controls.depth.kind must be one of {KINDS}, got {cfg.kind!r}")
    if cfg.output not in OUTPUTS:
        raise LongvieError(f"controls.depth.output must be one of {OUTPUTS}, got {cfg.output!r}")
    if cfg.batch_size < 1:
        raise LongvieError(f"controls.depth.batch_size must be >= 1, got {cfg.batch_size}")
    try:
        return _load(cfg)
    except Exception as exc:  # OSError, ValueError, safetensors and device errors alike
        reason = " ".join(str(exc).split())[:600] or type(exc).__name__
        where = ""
        if cfg.kind == "transformers" and not Path(cfg.model).is_dir():
            where = "; it is not a local folder, and as a hub id it could not be loaded"
            if _hub_offline():
                where += " (HF_HUB_OFFLINE is set, so only the local cache is read)"
        raise LongvieError(
            f"{CONFIG_KEY}={cfg.model!r} ({cfg.kind} depth model) could not be loaded{where}: "
            f"{reason}"
        ) from exc
