"""The rendered data set and curation (``synth``, ``curation``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SynthConfig:
    """The rendered default data set (``longvie synth``): seeded, so reruns are identical."""

    seed: int = 0
    train_videos: int = 32
    train_seconds: float = 20.0
    benchmark_videos: int = 4
    benchmark_seconds: float = 60.0
    fps: int = 8
    width: int = 64
    height: int = 64
    # Rays per pixel side; >1 renders larger and area-downsamples (anti-aliasing).
    supersample: int = 1
    min_objects: int = 3
    max_objects: int = 6
    moving_fraction: float = 0.5
    # Ground-truth tracks for a grid_size x grid_size grid of frame-0 pixels.
    track_grid: int = 16
    # x264 constant rate factor of the written mp4 (lower is better quality).
    crf: int = 12
    workers: int = 2
    # Sub-folder of paths.raw the rendered set is written to; user files elsewhere are untouched.
    subdir: str = "synth"
    # Re-render when the folder holds a different rendering (otherwise that is an error).
    force: bool = False


@dataclass
class CurationConfig:
    """Thresholds of ``longvie curate``. A segment or file failing one is rejected with a reason."""

    video_extensions: list[str] = field(
        default_factory=lambda: [".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"]
    )
    # Files written beside videos (ground truth, captions) that are not videos themselves.
    sidecar_suffixes: list[str] = field(default_factory=lambda: [".gt.npz", ".json", ".txt", ".md"])
    # Folder names under paths.raw whose videos are held out for the benchmark.
    benchmark_dirs: list[str] = field(default_factory=lambda: ["benchmark"])
    # Fraction of the remaining source videos held out (by a hash of the path) for validation.
    val_fraction: float = 0.1
    # PySceneDetect ContentDetector threshold and the shortest shot it may cut.
    scene_threshold: float = 27.0
    min_scene_seconds: float = 0.5
    # A source whose short side is smaller than this is rejected as too small.
    min_short_side: int = 64
    max_aspect_ratio: float = 3.0
    # Clips share this many frames with the previous clip (1 = the generation stride).
    clip_overlap: int = 1
    # Mean absolute frame-to-frame change (0-255 scale) below which a segment is static.
    static_threshold: float = 0.5
    # Mean variance of the Laplacian below which a segment is blurred.
    blur_threshold: float = 20.0
    # Two segments are near-duplicates when both their first-frame and mean-frame 16x16 grey
    # thumbnails differ by less than this mean absolute difference (0-255 scale).
    duplicate_max_diff: float = 3.0
    # Decoding fewer than (1 - this) x the declared frames marks a file as truncated.
    truncation_tolerance: float = 0.1
    # Greyscale: mean |R-G| + |G-B| below this (0-255 scale).
    grayscale_tolerance: float = 1.0
    # Variable frame rate: relative spread of frame intervals above this.
    vfr_tolerance: float = 0.1
    # Files and segments that pass get converted in this many worker processes.
    workers: int = 2
    # Preview image (a grid of clip frames) for the Dagster UI and the README.
    preview_clips: int = 12
