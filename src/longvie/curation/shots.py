"""Shot boundaries with PySceneDetect's content detector."""

from __future__ import annotations

from pathlib import Path

from longvie.config.schema import CurationConfig
from longvie.video.io import VideoReadError


def detect_cuts(path: Path, config: CurationConfig) -> list[float]:
    """Presentation times (seconds) at which a new shot starts, excluding the first shot."""
    from scenedetect import ContentDetector, SceneManager
    from scenedetect.backends.pyav import VideoStreamAv

    try:
        # suppress_output keeps FFmpeg's own logging off (it would print every encoder's banner);
        # the library asks for single-threaded decoding in that mode.
        video = VideoStreamAv(str(path), threading_mode="NONE", suppress_output=True)
        manager = SceneManager()
        manager.auto_downscale = True
        manager.add_detector(
            ContentDetector(
                threshold=config.scene_threshold, min_scene_len=f"{config.min_scene_seconds}s"
            )
        )
        manager.detect_scenes(video, show_progress=False)
        scenes = manager.get_scene_list(start_in_scene=True)
    except Exception as error:  # the library raises many kinds for a bad stream
        raise VideoReadError(f"shot detection failed: {type(error).__name__}: {error}") from error
    return [float(start.seconds) for start, _ in scenes[1:]]
