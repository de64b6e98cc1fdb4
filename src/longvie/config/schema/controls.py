"""Control-signal extraction (``controls``): depth model, tracker, normalisation."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DepthModelConfig:
    """The depth model of the ``estimated`` control source (any video, no ground truth).

    ``kind: longvie`` is the small network the pipeline trains on rendered ground truth
    (``longvie depth-estimator``); ``kind: transformers`` is any transformers depth-estimation
    model (Depth Anything V2 and kin) from a local folder or hub id, loaded offline.
    """

    kind: str = "longvie"
    model: str = "${paths.models}/depth_estimator"
    # What the model outputs: "disparity" (relative inverse depth, e.g. Depth Anything V2) or
    # "depth" (metric depth, inverted before normalisation).
    output: str = "disparity"
    batch_size: int = 16
    device: str = "cpu"


@dataclass
class DepthTrainingConfig:
    """Training of the small depth network on the rendered ground truth (train split only)."""

    steps: int = 1500
    batch_size: int = 32
    learning_rate: float = 2e-3
    # Channels of the first UNet level (doubling per level).
    channels: int = 16
    levels: int = 3
    seed: int = 0
    # At most this many frames are sampled from the training clips.
    max_frames: int = 6000


@dataclass
class TrackerConfig:
    """OpenCV pyramidal Lucas-Kanade with a forward-backward check (the ``estimated`` tracks)."""

    window: int = 15
    levels: int = 3
    # A step whose forward-backward round trip misses by more than this (px) loses the track.
    fb_threshold_px: float = 1.0
    # A step is also rejected when the window at its end correlates (zero-mean NCC) less than
    # this with the window at its start: replaced texture passes the round trip, not this.
    min_ncc: float = 0.7
    # Lost tracks are retried every frame from the query frame (re-seeding), with a stricter
    # correlation: over many tries chance look-alikes would otherwise be accepted.
    reseed: bool = True
    reseed_min_ncc: float = 0.85


@dataclass
class ControlsConfig:
    """Control-signal extraction (``longvie controls``): dense depth + sparse point maps."""

    # Raw sub-folder (first path component under paths.raw) -> source of its controls:
    # "engine" (ground-truth sidecars of rendered videos) or "estimated" (models).
    source_by_dir: dict[str, str] = field(default_factory=lambda: {"synth": "engine"})
    default_source: str = "estimated"
    # Queries: a grid x grid uniform grid on each clip's first frame.
    track_grid: int = 16
    # Global dense normalisation over a whole source video: percentiles of the disparity.
    depth_low_percentile: float = 5.0
    depth_high_percentile: float = 95.0
    # Point-map blue channel: percentiles of the queries' inverse depth.
    colour_low_percentile: float = 2.0
    colour_high_percentile: float = 98.0
    # Histogram bins of the streaming percentile pass.
    histogram_bins: int = 16384
    # Held-out splits on which the estimated controls are measured against ground truth.
    evaluate_splits: list[str] = field(default_factory=lambda: ["benchmark", "val"])
    workers: int = 2
    # Frames in each source's preview GIF (RGB | depth | point map).
    preview_frames: int = 32
    depth: DepthModelConfig = field(default_factory=DepthModelConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    depth_training: DepthTrainingConfig = field(default_factory=DepthTrainingConfig)
