"""Frame 0 carried by the camera's motion: where the tracks say the camera went, the memory shows
frame 0 moved there; where depth disagrees or the chain of tracks breaks, it shows nothing."""

from __future__ import annotations

import numpy as np

from longvie.generation.frame_memory import FrameMemory

SIZE = 32


def textured_frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def shifted_tracks(dx: float, frames: int = 5, visible: bool = True):
    """A grid of tracks that all move ``dx`` pixels right over the clip (a panning camera)."""
    ys, xs = np.mgrid[2:SIZE:4, 2:SIZE:4]
    query = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    steps = np.linspace(0, dx, frames, dtype=np.float32)
    xy = np.stack([query + [step, 0] for step in steps])
    return query, xy, np.full(xy.shape[:2], visible)


def test_a_pan_moves_frame_0_with_the_camera_and_leaves_the_new_strip_to_the_frame():
    first, generated = textured_frame(0), textured_frame(1)
    depth = np.full((SIZE, SIZE), 0.5, dtype=np.float32)
    memory = FrameMemory(first, depth)
    assert np.array_equal(memory.fill(generated[None], depth)[0], first)  # clip 0: frame 0 itself
    memory.advance(shifted_tracks(3.0))
    filled = memory.fill(generated[None], depth)[0]
    assert np.array_equal(filled[:, 4:], first[:, 1:-3])  # frame 0 moved 3 px to the right
    assert np.array_equal(filled[:, :3], generated[:, :3])  # what came into view: the frame's


def test_where_the_depth_disagrees_the_generated_frame_stays():
    first, generated = textured_frame(0), textured_frame(1)
    depth = np.full((SIZE, SIZE), 0.5, dtype=np.float32)
    memory = FrameMemory(first, depth)
    memory.advance(shifted_tracks(0.0))
    moved_object = depth.copy()
    moved_object[8:16, 8:16] = 0.1  # something nearer stands there now
    filled = memory.fill(generated[None], moved_object)[0]
    assert np.array_equal(filled[8:16, 8:16], generated[8:16, 8:16])
    assert np.array_equal(filled[20:, 20:], first[20:, 20:])


def test_a_clip_without_enough_visible_tracks_ends_the_memory():
    first, generated = textured_frame(0), textured_frame(1)
    depth = np.full((SIZE, SIZE), 0.5, dtype=np.float32)
    memory = FrameMemory(first, depth)
    memory.advance(shifted_tracks(1.0, visible=False))
    assert not memory.coverage(depth).any()
    memory.advance(shifted_tracks(1.0))  # a later good clip cannot restore a broken chain
    assert np.array_equal(memory.fill(generated[None], depth)[0], generated)
