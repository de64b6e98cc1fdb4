"""Pinhole intrinsics, look-at poses and smooth camera trajectories.

Conventions (OpenCV): camera x right, y down, z forward; pixel centres at integer coordinates, so
the image spans [-0.5, W - 0.5] and the principal point is ((W-1)/2, (H-1)/2). The world is z-up
with the scene centred on the origin. Trajectories keep the camera between ``MIN_RADIUS`` and
``MAX_RADIUS`` from the vertical axis, outside the disc the objects occupy and inside the backdrop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from longvie.synth.exact import cross, rotate, unit

CAMERA_MOTIONS = ("orbit", "dolly", "pan", "mixed")
# Only the pretraining corpus (extended variety) uses these.
EXTRA_CAMERA_MOTIONS = ("crane",)
MIN_RADIUS = 6.2
MAX_RADIUS = 11.5
MIN_HEIGHT = 1.2
MAX_HEIGHT = 5.5
WORLD_UP = np.array([0.0, 0.0, 1.0])


def intrinsics(width: int, height: int, fov_x_deg: float) -> np.ndarray:
    """K (3, 3) for a horizontal field of view; square pixels."""
    focal = (width / 2.0) / np.tan(np.radians(fov_x_deg) / 2.0)
    return np.array(
        [[focal, 0.0, (width - 1) / 2.0], [0.0, focal, (height - 1) / 2.0], [0.0, 0.0, 1.0]]
    )


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """cam_to_world (..., 4, 4) looking from ``position`` at ``target`` with world z up."""
    forward = target - position
    forward = unit(forward)
    right = unit(cross(forward, WORLD_UP))
    down = cross(forward, right)
    pose = np.zeros(position.shape[:-1] + (4, 4))
    pose[..., :3, 0] = right
    pose[..., :3, 1] = down
    pose[..., :3, 2] = forward
    pose[..., :3, 3] = position
    pose[..., 3, 3] = 1.0
    return pose


def pixel_directions(K: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Camera-space ray directions (N, 3) with z = 1 through pixel coordinates ``xy`` (N, 2)."""
    out = np.ones((len(xy), 3))
    out[:, 0] = (xy[:, 0] - K[0, 2]) / K[0, 0]
    out[:, 1] = (xy[:, 1] - K[1, 2]) / K[1, 1]
    return out


def project(
    K: np.ndarray, world_to_cam: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N, 2) and camera z (N,) of world points (N, 3)."""
    cam = rotate(world_to_cam[:3, :3], points) + world_to_cam[:3, 3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = K[0, 0] * cam[:, 0] / z + K[0, 2]
        y = K[1, 1] * cam[:, 1] / z + K[1, 2]
    return np.stack([x, y], axis=1), z


@dataclass(frozen=True)
class Sinusoid:
    """``amplitude * sin(2 pi t / period + phase)``: the building block of every smooth path."""

    amplitude: float
    period: float
    phase: float

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return self.amplitude * np.sin(2.0 * np.pi * t / self.period + self.phase)


def _wave(
    rng: np.random.Generator, amplitude: tuple[float, float], period: tuple[float, float]
) -> Sinusoid:
    return Sinusoid(
        float(rng.uniform(*amplitude)),
        float(rng.uniform(*period)),
        float(rng.uniform(0, 2 * np.pi)),
    )


def _total(waves: tuple[Sinusoid, ...], t: np.ndarray) -> np.ndarray:
    return sum((w(t) for w in waves), np.zeros_like(t))


@dataclass(frozen=True)
class CameraPath:
    """A smooth trajectory: cylindrical position around the scene plus a look-at target.

    position = (radius cos azimuth, radius sin azimuth, height); each coordinate is a base value,
    an optional linear drift (orbit) and a sum of low-frequency sinusoids. ``pan_yaw`` turns the
    view away from the target about the vertical axis (pans).
    """

    motion: str
    fov_x_deg: float
    azimuth0: float
    azimuth_rate: float
    azimuth_waves: tuple[Sinusoid, ...]
    radius0: float
    radius_waves: tuple[Sinusoid, ...]
    height0: float
    height_waves: tuple[Sinusoid, ...]
    target0: tuple[float, float, float]
    target_waves: tuple[tuple[Sinusoid, ...], tuple[Sinusoid, ...], tuple[Sinusoid, ...]]
    pan_yaw_waves: tuple[Sinusoid, ...]

    def positions(self, t: np.ndarray) -> np.ndarray:
        azimuth = self.azimuth0 + self.azimuth_rate * t + _total(self.azimuth_waves, t)
        radius = np.clip(self.radius0 + _total(self.radius_waves, t), MIN_RADIUS, MAX_RADIUS)
        height = np.clip(self.height0 + _total(self.height_waves, t), MIN_HEIGHT, MAX_HEIGHT)
        return np.stack([radius * np.cos(azimuth), radius * np.sin(azimuth), height], axis=1)

    def cam_to_world(self, t: np.ndarray) -> np.ndarray:
        """Poses (T, 4, 4) at times ``t`` (seconds)."""
        position = self.positions(t)
        target = np.stack(
            [base + _total(waves, t) for base, waves in zip(self.target0, self.target_waves)],
            axis=1,
        )
        yaw = _total(self.pan_yaw_waves, t)
        offset = target - position
        cos, sin = np.cos(yaw), np.sin(yaw)
        turned = np.stack(
            [
                cos * offset[:, 0] - sin * offset[:, 1],
                sin * offset[:, 0] + cos * offset[:, 1],
                offset[:, 2],
            ],
            axis=1,
        )
        return look_at(position, position + turned)

    def describe(self) -> str:
        """The caption clause for this motion."""
        if self.motion == "orbit":
            side = "right" if self.azimuth_rate > 0 else "left"
            return f"the camera orbits to the {side}"
        if self.motion == "dolly":
            return "the camera dollies in and out"
        if self.motion == "pan":
            return "the camera pans left and right"
        if self.motion == "crane":
            return "the camera cranes up and down"
        return "the camera drifts smoothly around the scene"


def _base_inside(
    rng: np.random.Generator, waves: tuple[Sinusoid, ...], low: float, high: float
) -> float:
    """A base value such that base + waves stays in [low, high] (clipping would kink the path)."""
    swing = sum(abs(w.amplitude) for w in waves)
    lo, hi = low + swing, high - swing
    return float(rng.uniform(lo, hi)) if hi > lo else (low + high) / 2.0


def sample_camera_path(rng: np.random.Generator, motion: str) -> CameraPath:
    """Random parameters for one of ``CAMERA_MOTIONS``; amplitudes keep it in the allowed shell."""
    if motion not in CAMERA_MOTIONS + EXTRA_CAMERA_MOTIONS:
        raise ValueError(f"unknown camera motion {motion!r}; expected one of "
                         f"{CAMERA_MOTIONS + EXTRA_CAMERA_MOTIONS}")
    none: tuple[Sinusoid, ...] = ()
    fov = float(rng.uniform(45.0, 60.0))
    azimuth0 = float(rng.uniform(0.0, 2.0 * np.pi))
    target0 = (
        float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.5, 0.5)), float(rng.uniform(0.3, 0.8))
    )
    sway = tuple(_wave(rng, (0.1, 0.3), (8.0, 16.0)) for _ in range(3))
    lower = Sinusoid(sway[2].amplitude * 0.5, sway[2].period, sway[2].phase)
    target_waves = ((sway[0],), (sway[1],), (lower,))
    height_waves = (_wave(rng, (0.1, 0.4), (7.0, 15.0)),)
    azimuth_rate = 0.0
    azimuth_waves = none
    radius_waves = none
    pan_waves = none
    if motion == "orbit":
        azimuth_rate = float(rng.choice([-1.0, 1.0]) * np.radians(rng.uniform(8.0, 18.0)))
        radius_waves = (_wave(rng, (0.2, 0.6), (9.0, 17.0)),)
    elif motion == "dolly":
        radius_waves = (_wave(rng, (1.0, 1.9), (6.0, 12.0)),)
        azimuth_waves = (_wave(rng, (0.03, 0.1), (10.0, 18.0)),)
    elif motion == "pan":
        pan_waves = (_wave(rng, (np.radians(15.0), np.radians(28.0)), (6.0, 12.0)),)
    elif motion == "crane":
        azimuth_rate = float(rng.choice([-1.0, 1.0]) * np.radians(rng.uniform(3.0, 8.0)))
        height_waves = (_wave(rng, (1.0, 1.6), (6.0, 12.0)),)
    else:
        azimuth_waves = (
            _wave(rng, (np.radians(15.0), np.radians(35.0)), (12.0, 24.0)),
            _wave(rng, (np.radians(4.0), np.radians(10.0)), (5.0, 9.0)),
        )
        radius_waves = (_wave(rng, (0.5, 1.2), (7.0, 13.0)), _wave(rng, (0.1, 0.3), (3.0, 5.0)))
        height_waves = height_waves + (_wave(rng, (0.2, 0.5), (9.0, 14.0)),)
        pan_waves = (_wave(rng, (np.radians(4.0), np.radians(10.0)), (6.0, 11.0)),)
    radius0 = _base_inside(rng, radius_waves, MIN_RADIUS + 0.4, 9.5)
    height0 = _base_inside(rng, height_waves, 2.2, 4.8)
    return CameraPath(
        motion=motion,
        fov_x_deg=fov,
        azimuth0=azimuth0,
        azimuth_rate=azimuth_rate,
        azimuth_waves=azimuth_waves,
        radius0=radius0,
        radius_waves=radius_waves,
        height0=height0,
        height_waves=height_waves,
        target0=target0,
        target_waves=target_waves,
        pan_yaw_waves=pan_waves,
    )
