"""Sampling long videos (``generation``) and the benchmark that scores them (``benchmark``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GenerationConfig:
    """``longvie generate``: which model, which long video's controls, and the sampler.

    LongVie's sampler is 50 Euler steps, shift 5, guidance 5 (wan14b); the CPU profiles
    take 8 UniPC steps (bench/sampler_steps.py) and the shift they were trained with.
    """

    # A registry alias (champion, challenger), a version number, or a model folder.
    model: str = "champion"
    # A curated source id: its first frame, captions and stored controls.
    source: str = ""
    # Or your own: a first frame image, and depth + point-map videos (normalised here, over the
    # whole video, before splitting into clips).
    first_frame: str = ""
    depth_video: str = ""
    point_map_video: str = ""
    caption: str = ""
    # Frames to generate; 0 = as many as the controls have.
    frames: int = 0
    output: str = "${paths.root}/outputs/generated.mp4"
    # 8 UniPC steps land closer to the converged (100-step) solution than 20 Euler steps, at 36 %
    # of their cost (bench/sampler_steps.py: latent RMS 0.118 vs 0.134 on 8 held-out clips).
    steps: int = 8
    shift: float = 3.0
    guidance: float = 3.0
    history_frames: int = 8
    seed: int = 0
    # Each next clip's conditioning frame takes the first frame's per-channel colour mean and
    # spread (generation.long_video.anchor_colours).
    colour_anchor: bool = False
    # With ``model.sparse_control=first_frame``: colour each clip's sparse control from frame 0
    # warped by the camera's motion (a homography chained over the clips' tracks) wherever its
    # depth agrees, the conditioning frame elsewhere (generation.frame_memory.FrameMemory).
    frame_memory: bool = False
    # LongVie's unified noise: one start noise for every clip (latent frame 0 leaning towards the
    # previous clip's end) instead of a fresh draw per clip.
    unified_noise: bool = True
    # "euler" (FlowMatchEulerDiscreteScheduler's schedule) or "unipc" (UniPCMultistepScheduler
    # with flow sigmas, as the Wan pipeline samples: far fewer steps for the same error).
    solver: str = "unipc"


@dataclass
class BenchmarkConfig:
    """``longvie benchmark``: the held-out long videos regenerated and scored.

    Every curated source of the ``benchmark`` split is a benchmark video (rendered ones and any
    user videos curated into it). The sampler is ``generation``'s, except ``steps`` when set.
    """

    # A registry alias, a version number, or a model folder; empty = the version the last
    # `train stage=3` registered (reports/train_3.json), else the newest stage-3 version.
    candidate: str = ""
    # Benchmark videos to use (0 = all), in source-id order.
    videos: int = 0
    # Frames regenerated per video from its start (0 = the whole video; must hold one clip).
    frames: int = 0
    # Sampler steps (0 = generation.steps).
    steps: int = 0
    # Sampler seeds per generating contender (generation.seed, +1, ...). The gate's figures
    # (SSIM, PSNR, flicker, seams, drift) are their means, and their spread is reported: on tiny
    # the candidate-vs-naive gaps change sign from one seed to the next (bench/seed_spread.py).
    # Control fidelity, motion, model-based metrics and the pictures come from the first seed.
    seeds: int = 1
    # Model-based metrics run only when their weights are configured (a local folder or hub id
    # loadable offline): VBench's subject consistency uses DINO features, background
    # consistency CLIP image features.
    subject_consistency_model: str = ""
    background_consistency_model: str = ""
    # Where the side-by-side videos go (also logged to MLflow).
    videos_dir: str = "${paths.root}/outputs/benchmark"
