"""Frame 0's appearance carried through a long video by the camera's motion, for the sparse control.

On profiles whose sparse control is the conditioning frame carried along the tracks
(``model.sparse_control=first_frame``), every clip after the first is coloured by the model's own
last frame, and what that frame lost no later clip gets back: given the *real* frame's colours
instead, the tiny model holds the first clip's SSIM over the whole minute
(``bench/sparse_colour_memory.py``). The real frame is unknown, but frame 0 is known and the
camera returns to what it showed. So the camera's motion is chained clip by clip as a homography
fitted (RANSAC) to each clip's visible tracks, frame 0 is warped once by the chain to the next
clip's start, and its pixels replace the conditioning frame's where frame 0's depth, warped the
same way, agrees with the clip's own depth (so moved objects and what is off the plane the
homography models fall back to the generated frame). One warp of frame 0 per clip: no resampling
accumulates. Once a clip has too few visible tracks to fit a homography, the chain is lost and the
memory stays empty from there on.
"""

from __future__ import annotations

import numpy as np

# RANSAC inlier distance (px) of the per-clip homography, and the depth agreement (normalised
# depth, 0 = near) a warped frame-0 pixel needs to be used.
RANSAC_THRESHOLD_PX = 1.5
DEPTH_TOLERANCE = 0.05
MIN_TRACKS = 8


def camera_step(tracks: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray | None:
    """The 3x3 homography from a clip's first frame to its last, fitted to the tracks visible at
    the end; None when fewer than ``MIN_TRACKS`` are or the fit fails."""
    import cv2

    query, xy, visible = tracks
    shown = visible[-1] & np.all(np.isfinite(xy[-1]), axis=1)
    if int(shown.sum()) < MIN_TRACKS:
        return None
    step, _ = cv2.findHomography(np.asarray(query)[shown].astype(np.float32),
                                 xy[-1][shown].astype(np.float32), cv2.RANSAC,
                                 RANSAC_THRESHOLD_PX)
    return step


class FrameMemory:
    """Frame 0 and the camera's motion since it; :meth:`fill` colours a clip's start from it."""

    def __init__(self, first_frame: np.ndarray, first_depth: np.ndarray) -> None:
        self.first_frame, self.first_depth = first_frame, first_depth.astype(np.float32)
        self.camera: np.ndarray | None = np.eye(3)

    def advance(self, tracks: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Move to the end of the clip whose tracks these are (the next clip's start)."""
        step = camera_step(tracks) if self.camera is not None else None
        self.camera = None if step is None else step @ self.camera

    def coverage(self, depth: np.ndarray) -> np.ndarray:
        """(H, W) bool: where warped frame 0 stands in for the frame whose depth is ``depth``."""
        import cv2

        height, width = depth.shape
        if self.camera is None:
            return np.zeros((height, width), dtype=bool)
        size = (width, height)
        inside = cv2.warpPerspective(np.ones((height, width), np.uint8), self.camera, size,
                                     flags=cv2.INTER_NEAREST) > 0
        moved = cv2.warpPerspective(self.first_depth, self.camera, size,
                                    flags=cv2.INTER_NEAREST)
        return inside & (np.abs(moved - depth) < DEPTH_TOLERANCE)

    def fill(self, frames: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """``frames`` (B, H, W, 3) uint8 with warped frame 0 where it is trusted (see
        :meth:`coverage`); ``depth`` (H, W) is the depth of the frame they show."""
        import cv2

        covered = self.coverage(depth)
        if not covered.any():
            return frames
        height, width = depth.shape
        warped = cv2.warpPerspective(self.first_frame, self.camera, (width, height),
                                     flags=cv2.INTER_LINEAR)
        return np.where(covered[None, ..., None], warped[None], frames).astype(np.uint8)
