"""Generate a long video clip by clip, streaming frames to the output file.

Per clip: the controls of its frames (already globally normalised over the whole video) are
encoded; the condition is the last generated frame, decoded and encoded again as an image; the
history is the last ``history_frames`` generated frames (the previous clip's last latents); with
``unified_noise`` (LongVie's) the start noise is one sample drawn once and reused for every clip,
whose latent frame 0 is blended towards the end of the history (0.074 z_H[-1] + 0.926 noise),
without it each clip draws its own. Only the current clip's tensors are
alive at any time, so memory does not grow with the video's length.

The naive baseline of the benchmark is the same loop with ``history=False, unified_noise=False``:
each clip sees only its first frame, with fresh noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from longvie.generation.frame_memory import FrameMemory
from longvie.generation.plan import ClipSpan, plan_clips
from longvie.model.backbone import LatentCodec
from longvie.model.sampler import ClipInputs, sample_clip
from longvie.training.clips import batch_to_frames, first_frame_controls, video_tensor

HISTORY_NOISE_BLEND = 0.074


class ControlVideo(Protocol):
    """Globally normalised controls of a long video, read a span at a time."""

    num_frames: int

    def span(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(depth (n, H, W) float32 in [0, 1] with 0 = near, point map (n, H, W, 3) uint8)."""
        ...

    def span_tracks(self, start: int, stop: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The tracks of frames [start, stop) queried on ``start``: (query (N, 2), xy (n, N, 2),
        visible (n, N)), or None when only the point map is kept (they are read back from it)."""
        ...


@dataclass(frozen=True)
class GenerationSettings:
    steps: int = 50
    shift: float = 5.0
    guidance: float = 5.0
    history_frames: int = 8
    history: bool = True
    unified_noise: bool = True
    seed: int = 0
    solver: str = "euler"
    # How the model reads its sparse control (``model.sparse_control``): ``first_frame``
    # carries each chain's own conditioning frame along the clip's tracks.
    sparse_control: str = "point_map"
    # Match each next clip's conditioning frame to the first frame's per-channel colour mean and
    # spread (:func:`anchor_colours`): the decode-encode at every clip boundary drifts colours.
    colour_anchor: bool = False
    # Colour the sparse control from frame 0 warped by the camera's motion where it is trusted
    # (:class:`longvie.generation.frame_memory.FrameMemory`); ``first_frame`` colouring only.
    frame_memory: bool = False

    @classmethod
    def from_config(cls, generation, **overrides) -> GenerationSettings:
        """The sampler of a ``GenerationConfig`` (``generation`` section), with ``overrides``."""
        values = {"steps": generation.steps, "shift": generation.shift,
                  "guidance": generation.guidance, "history_frames": generation.history_frames,
                  "seed": generation.seed, "solver": generation.solver,
                  "colour_anchor": generation.colour_anchor,
                  "frame_memory": generation.frame_memory,
                  "unified_noise": generation.unified_noise}
        return cls(**{**values, **overrides})


def anchor_colours(frames: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """``frames`` (B, H, W, 3) uint8 with each channel's mean and standard deviation moved to
    those of ``anchor`` (H, W, 3): the first frame's colours, which a chain of generated clips
    otherwise loses a little at every clip boundary."""
    values = frames.astype(np.float32)
    reference = anchor.astype(np.float32).reshape(-1, 3)
    mean, spread = values.mean(axis=(1, 2), keepdims=True), values.std(axis=(1, 2), keepdims=True)
    target_mean, target_spread = reference.mean(axis=0), reference.std(axis=0)
    anchored = (values - mean) / np.maximum(spread, 1.0) * target_spread + target_mean
    return anchored.round().clip(0, 255).astype(np.uint8)


def padded_span(controls: ControlVideo, span: ClipSpan) -> tuple[np.ndarray, np.ndarray]:
    """The clip's controls; frames past the video's end repeat its last frame."""
    stop = min(span.stop, controls.num_frames)
    depth, points = controls.span(span.start, stop)
    missing = span.stop - stop
    if missing:
        depth = np.concatenate([depth, np.repeat(depth[-1:], missing, axis=0)])
        points = np.concatenate([points, np.repeat(points[-1:], missing, axis=0)])
    return depth, points


def control_latents(codec: LatentCodec, depth: np.ndarray, points: np.ndarray
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense (grey x3 in [-1, 1]) and sparse control videos encoded: (1, 16, F, h, w) each."""
    grey = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32)) * 2 - 1
    dense = grey.unsqueeze(0).expand(3, -1, -1, -1).unsqueeze(0)
    sparse = video_tensor(points).unsqueeze(0)
    return codec.encode(dense), codec.encode(sparse)


def padded_tracks(controls: ControlVideo, span: ClipSpan, points: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The clip's tracks (from the controls, or read back from its point map); frames past the
    video's end repeat the last one."""
    from longvie.controls.pointmap import tracks_from_point_map

    found = controls.span_tracks(span.start, min(span.stop, controls.num_frames))
    query, xy, visible = found if found is not None else tracks_from_point_map(points)
    missing = len(points) - len(xy)
    if missing > 0:
        xy = np.concatenate([xy, np.repeat(xy[-1:], missing, axis=0)])
        visible = np.concatenate([visible, np.repeat(visible[-1:], missing, axis=0)])
    return query, xy, visible


def clip_noise(shape: torch.Size, seeds: Sequence[int], offset: int) -> torch.Tensor:
    """One start noise per chain (seed + ``offset``), stacked: (chains, *shape[1:])."""
    return torch.cat([torch.randn(shape, generator=torch.Generator().manual_seed(seed + offset))
                      for seed in seeds])


def blended_noise(noise: torch.Tensor, previous_end: torch.Tensor | None) -> torch.Tensor:
    """A copy of ``noise`` whose latent frame 0 leans towards the previous clip's last latent
    (LongVie's unified noise: ``HISTORY_NOISE_BLEND`` of it); unchanged without one."""
    start = noise.clone()
    if previous_end is not None:
        start[:, :, 0] = (HISTORY_NOISE_BLEND * previous_end
                          + (1 - HISTORY_NOISE_BLEND) * noise[:, :, 0])
    return start


@torch.no_grad()
def generate_long_video(
    parts,
    first_frame: np.ndarray,
    controls: ControlVideo,
    captions: Sequence[str] | str,
    total_frames: int,
    clip_frames: int,
    settings: GenerationSettings,
    write: Callable[[np.ndarray], None],
    condition_encoding: str = "first_frame",
    progress: bool = True,
) -> dict:
    """Generate ``total_frames`` frames; ``write`` receives each new frame (H, W, 3) uint8.

    ``parts``: a :class:`longvie.model.folder.Generator`. ``captions``: one per clip or one for
    all. Returns the per-clip seconds.
    """
    return generate_long_videos(parts, first_frame, controls, captions, total_frames,
                                clip_frames, settings, [settings.seed],
                                lambda _, frame: write(frame), condition_encoding, progress)


@torch.no_grad()
def generate_long_videos(
    parts,
    first_frame: np.ndarray,
    controls: ControlVideo,
    captions: Sequence[str] | str,
    total_frames: int,
    clip_frames: int,
    settings: GenerationSettings,
    seeds: Sequence[int],
    write: Callable[[int, np.ndarray], None],
    condition_encoding: str = "first_frame",
    progress: bool = True,
    on_clip: Callable[[ClipSpan, torch.Tensor, np.ndarray], None] | None = None,
) -> dict:
    """:func:`generate_long_video` for several sampler seeds at once, as one batch (the DiT and
    VAE run far more efficiently on a batch than on one clip at a time on a CPU); ``write``
    receives (index into ``seeds``, frame). Chain ``k`` is what a run with ``seeds[k]`` alone
    generates, up to float summation order. ``on_clip(span, latents, next_frames)``, when given,
    sees each clip's generated latents (chains, z, F, h, w) and the frames (chains, H, W, 3)
    uint8 the next clip is conditioned on (what training on the model's own rollouts needs)."""
    import time

    from tqdm import tqdm

    spans = plan_clips(total_frames, clip_frames)
    captions = [captions] * len(spans) if isinstance(captions, str) else list(captions)
    if len(captions) < len(spans):
        captions += [captions[-1]] * (len(spans) - len(captions))
    chains = len(seeds)
    codec = LatentCodec(parts.vae)
    transformer = parts.transformer.eval()
    null_text = parts.text_encoder.encode([""])
    frame = video_tensor(first_frame[None]).unsqueeze(0)[:, :, 0].expand(chains, -1, -1, -1)
    frame_pixels = np.repeat(first_frame[None], chains, axis=0)  # each chain's condition
    shared_noise = None
    history = previous_end = None  # history tokens; the last latent for the noise blend
    memory = (FrameMemory(first_frame, controls.span(0, 1)[0][0])
              if settings.frame_memory and settings.sparse_control == "first_frame" else None)
    seconds = []
    bar = tqdm(spans, desc="generate", unit="clip", disable=not progress)
    for span in bar:
        started = time.perf_counter()
        depth, points = padded_span(controls, span)
        dense, sparse = control_latents(codec, depth, points)
        sparse = sparse.expand(chains, -1, -1, -1, -1)
        if settings.sparse_control == "first_frame":
            tracks = padded_tracks(controls, span, points)
            colours = frame_pixels if memory is None else memory.fill(frame_pixels, depth[0])
            sparse = first_frame_controls(codec, colours, depth, tracks)
        condition = codec.condition(frame, clip_frames, condition_encoding)
        if shared_noise is None or not settings.unified_noise:
            offset = 0 if settings.unified_noise else span.index
            shared_noise = clip_noise(dense.shape, seeds, offset)
        start_noise = blended_noise(shared_noise, previous_end if settings.unified_noise else None)
        text = parts.text_encoder.encode([captions[span.index]]).expand(chains, -1, -1)
        inputs = ClipInputs(condition, text, null_text, dense.expand(chains, -1, -1, -1, -1),
                            sparse, history)
        latents = sample_clip(transformer, inputs, start_noise, settings.steps, settings.shift,
                              settings.guidance, settings.solver)
        videos = batch_to_frames(codec.decode(latents))
        for chain, video in enumerate(videos):
            for index in range(span.keep_from, span.keep_to):
                write(chain, video[index])
        # The next clip starts from the last generated frame, decoded then encoded again.
        frame_pixels = (anchor_colours(videos[:, -1], first_frame) if settings.colour_anchor
                        else videos[:, -1])
        frame = video_tensor(frame_pixels).permute(1, 0, 2, 3)
        if on_clip is not None:
            on_clip(span, latents, frame_pixels)
        count = settings.history_frames // 4
        history = latents[:, :, -count:] if settings.history and count else None
        previous_end = latents[:, :, -1]
        if memory is not None:
            memory.advance(tracks)
        seconds.append((time.perf_counter() - started) / chains)
    bar.close()
    return {"clips": len(spans), "frames": total_frames, "chains": chains,
            "seconds_per_clip": seconds}
