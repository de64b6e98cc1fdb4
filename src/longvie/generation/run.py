"""``longvie generate``: inputs checked, model resolved, the long video generated to a file.

Every check that can fail on bad input runs before a model is loaded: the controls exist and are
long enough, the first frame matches their resolution, the length splits into clips, the model
(alias, version or folder) exists. The output is written next to its final name and renamed when
complete, so a killed run never leaves a half-written video under the requested name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from longvie.config import LongvieConfig
from longvie.errors import LongvieError
from longvie.generation.files import FileControls
from longvie.generation.plan import plan_clips
from longvie.generation.sources import stored_video
from longvie.registry import resolve_model


@dataclass
class GenerationInputs:
    controls: object  # a ControlVideo
    first_frame: np.ndarray
    captions: list[str]
    frames: int
    source: str


def read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise LongvieError(f"generation.first_frame={str(path)!r}: no such file")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise LongvieError(f"generation.first_frame={str(path)!r}: not an image ({error})") \
            from error


def generation_inputs(config: LongvieConfig) -> GenerationInputs:
    """The controls, first frame and captions ``config.generation`` names, all checked."""

    settings, clip_frames = config.generation, config.video.clip_frames
    if settings.source and (settings.depth_video or settings.point_map_video):
        raise LongvieError("give generation.source or generation.depth_video + point_map_video, "
                           "not both")
    if settings.source:
        video = stored_video(config, settings.source)
        controls, source = video, settings.source
        first = (read_image(Path(settings.first_frame)) if settings.first_frame
                 else video.first_frame())
        default_captions = [video.caption_at(span.start) for span in
                            plan_clips(video.num_frames, clip_frames)]
        size = video.span(0, 1)[0].shape[1:]
    elif settings.depth_video and settings.point_map_video:
        controls = FileControls(Path(settings.depth_video), Path(settings.point_map_video))
        if not settings.first_frame:
            raise LongvieError("generation.first_frame is required with control videos")
        first, source = read_image(Path(settings.first_frame)), settings.depth_video
        default_captions = [settings.caption]
        size = (controls.height, controls.width)
    else:
        raise LongvieError("nothing to generate from: set generation.source (a curated source "
                           "id) or generation.depth_video + generation.point_map_video")
    if first.shape[:2] != tuple(size):
        raise LongvieError(f"first frame is {first.shape[1]}x{first.shape[0]} but the controls "
                           f"are {size[1]}x{size[0]}")
    frames = settings.frames or controls.num_frames
    if frames > controls.num_frames:
        raise LongvieError(f"generation.frames={frames}: the controls have only "
                           f"{controls.num_frames} frames")
    plan_clips(frames, clip_frames)  # a length too short for one clip fails here
    captions = [settings.caption] if settings.caption else default_captions
    return GenerationInputs(controls, first, captions, frames, source)


def write_long_video(parts, inputs: GenerationInputs, sampler, output: Path, fps: int,
                     clip_frames: int, condition_encoding: str, progress: bool = True) -> dict:
    """Generate ``inputs`` with ``parts`` into the mp4 ``output``, which appears only complete
    (``longvie generate`` and the served MLflow model both write through here)."""
    from longvie.generation.long_video import generate_long_video
    from longvie.video.io import VideoWriter

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".{output.name}.partial.mp4")
    height, width = inputs.first_frame.shape[:2]
    try:
        with VideoWriter(staging, fps, width, height) as writer:
            report = generate_long_video(parts, inputs.first_frame, inputs.controls,
                                         inputs.captions, inputs.frames, clip_frames, sampler,
                                         writer.write, condition_encoding, progress)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    staging.replace(output)
    return report


def generate(config: LongvieConfig, progress: bool = True) -> dict:
    """Generate ``config.generation`` into ``generation.output``; returns a small report."""
    from longvie.generation.long_video import GenerationSettings
    from longvie.model.folder import load_generator

    settings = config.generation
    inputs = generation_inputs(config)
    model_dir = resolve_model(config, settings.model)
    started = time.perf_counter()
    parts = load_generator(str(model_dir), config.model, with_controller=False)
    output = Path(settings.output)
    report = write_long_video(parts, inputs, GenerationSettings.from_config(
        settings, sparse_control=config.model.sparse_control), output,
                              config.video.fps, config.video.clip_frames,
                              config.model.condition_encoding, progress)
    return {**report, "model": str(model_dir), "source": inputs.source, "output": str(output),
            "seconds": round(time.perf_counter() - started, 2)}
