"""A curated source's controls as MP4 files a user can watch, and feed back to ``generate``.

``longvie export-controls generation.source=<id>`` writes into ``outputs/controls/<id>/``:
``depth.mp4`` (grey, dark = near: the format ``generation.depth_video`` reads),
``point_map.mp4`` (``generation.point_map_video``) and ``side_by_side.mp4`` (real frames | depth
| point map) to look at.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from longvie.config import LongvieConfig
from longvie.errors import LongvieError
from longvie.generation.sources import stored_video

CHUNK = 64  # frames read at a time, so a long video never sits in memory whole


def export_controls(config: LongvieConfig) -> dict[str, Path]:
    """Write the three videos of ``generation.source``; returns their paths by name. Each is
    written beside its place and renamed into it once whole."""
    import os

    source = config.generation.source
    if not source:
        raise LongvieError("generation.source: give a curated source id (`longvie sources` "
                           "lists them)")
    video = stored_video(config, source)
    folder = Path(config.paths.root) / "outputs" / "controls" / source.replace("/", "_")
    paths = {name: folder / f"{name}.mp4" for name in ("depth", "point_map", "side_by_side")}
    temporaries = {name: path.with_name(f".{path.name}.tmp") for name, path in paths.items()}
    try:
        _write(video, temporaries, config.video.fps)
        for name, path in paths.items():
            os.replace(temporaries[name], path)
    finally:
        for temporary in temporaries.values():
            temporary.unlink(missing_ok=True)
    return paths


def _write(video, paths: dict[str, Path], fps: int) -> None:
    from contextlib import ExitStack

    from longvie.video.io import VideoWriter

    height, width = video.first_frame().shape[:2]
    with ExitStack() as stack:
        out = {name: stack.enter_context(VideoWriter(
                   path, fps=fps, width=(3 if name == "side_by_side" else 1) * width,
                   height=height))
               for name, path in paths.items()}
        for start in range(0, video.num_frames, CHUNK):
            stop = min(start + CHUNK, video.num_frames)
            depth, points = video.span(start, stop)
            grey = np.repeat((depth * 255).round().astype(np.uint8)[..., None], 3, axis=-1)
            real = video.reference(start, stop)
            for index in range(stop - start):
                out["depth"].write(grey[index])
                out["point_map"].write(points[index])
                out["side_by_side"].write(np.concatenate([real[index], grey[index],
                                                          points[index]], axis=1))
