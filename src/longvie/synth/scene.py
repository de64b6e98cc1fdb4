"""Random scene descriptions: which objects, where, how they move, and what the camera does.

A :class:`SceneSpec` is pure data drawn from one seed, so the same seed always gives the same
video. Mesh 0 is the ground, mesh 1 the backdrop and meshes 2.. the objects, in that order,
everywhere (object ids in the ground truth, ``mesh_index`` in the metadata).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from longvie.synth.camera import (
    CAMERA_MOTIONS,
    EXTRA_CAMERA_MOTIONS,
    CameraPath,
    sample_camera_path,
)
from longvie.synth.exact import norm

SHAPES = ("sphere", "box", "cylinder", "cone", "capsule", "torus")
PATTERNS = ("striped", "checkered", "speckled")
OBJECT_MOTIONS = ("sliding", "circling", "spinning")
# The pretraining corpus (``variety="extended"``) draws from these on top of the standard sets;
# the pipeline's train and benchmark scenes never do, so their renders stay byte-identical.
EXTRA_SHAPES = ("pyramid", "prism")
EXTRA_PATTERNS = ("plain", "ringed")
EXTRA_MOTIONS = ("hopping",)
VARIETIES = ("standard", "extended")
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.16, 0.13),
    "green": (0.2, 0.7, 0.25),
    "blue": (0.18, 0.35, 0.88),
    "yellow": (0.92, 0.82, 0.18),
    "orange": (0.95, 0.5, 0.12),
    "purple": (0.55, 0.25, 0.75),
    "cyan": (0.2, 0.78, 0.82),
    "pink": (0.95, 0.48, 0.68),
    "white": (0.9, 0.9, 0.88),
}
EXTRA_COLOURS: dict[str, tuple[float, float, float]] = {
    "brown": (0.5, 0.32, 0.18),
    "grey": (0.5, 0.5, 0.52),
    "black": (0.12, 0.12, 0.13),
    "lime": (0.6, 0.88, 0.2),
    "navy": (0.12, 0.16, 0.45),
    "magenta": (0.85, 0.2, 0.7),
    "teal": (0.1, 0.5, 0.5),
    "gold": (0.85, 0.65, 0.2),
}
ALL_COLOURS = {**COLOURS, **EXTRA_COLOURS}
# Lighting of the standard scenes; extended scenes draw their own.
AMBIENT = 0.38
DIFFUSE = 0.75
GROUND_ID = 0
BACKDROP_ID = 1
FIRST_OBJECT_ID = 2
# Objects (with their whole motion) stay inside this disc; the camera keeps outside MIN_RADIUS.
STAGE_RADIUS = 4.6
# The pretraining corpus has a code of its own: its seeds never coincide with the pipeline's.
_SPLIT_CODES = {"train": 0, "benchmark": 1, "pretrain": 2}
_MOTION_WORDS = {
    "sliding": "sliding back and forth",
    "circling": "moving in a circle",
    "spinning": "spinning",
    "hopping": "hopping",
}


@dataclass(frozen=True)
class ObjectSpec:
    """One primitive: its look (in local coordinates) and its motion (as a function of time)."""

    shape: str
    colour: str
    pattern: str
    size: float  # horizontal bounding radius of the local mesh
    height: float  # vertical extent of the local mesh
    stand_up: bool  # torus only: ring standing on its rim instead of lying flat
    texture_scale: float  # checker cell / stripe period / noise feature size, in local units
    texture_axis: tuple[float, float, float]  # unit direction across the stripes
    texture_seed: int
    centre: tuple[float, float]  # rest position (or circle centre) on the ground
    yaw0: float
    motion: str  # "static" or one of OBJECT_MOTIONS
    amplitude: float  # sliding half-stroke or circle radius
    direction: float  # sliding direction angle
    period: float  # seconds per back-and-forth, per circle or per turn
    phase: float
    turn: float  # +1 counter-clockwise, -1 clockwise (circling, spinning)

    @property
    def moving(self) -> bool:
        return self.motion != "static"

    @property
    def reach(self) -> float:
        """Radius of the ground disc the object sweeps over the whole video."""
        return self.size + (self.amplitude if self.motion in ("sliding", "circling") else 0.0)

    def poses(self, t: np.ndarray) -> np.ndarray:
        """mesh_to_world (T, 4, 4): yaw about the vertical axis, then translation on the ground."""
        angle = 2.0 * np.pi * t / self.period + self.phase
        x = np.full_like(t, self.centre[0])
        y = np.full_like(t, self.centre[1])
        yaw = np.full_like(t, self.yaw0)
        if self.motion == "sliding":
            stroke = self.amplitude * np.sin(angle)
            x = x + stroke * np.cos(self.direction)
            y = y + stroke * np.sin(self.direction)
        elif self.motion == "circling":
            x = x + self.amplitude * np.cos(self.turn * angle)
            y = y + self.amplitude * np.sin(self.turn * angle)
            yaw = yaw + self.turn * angle
        elif self.motion == "spinning":
            yaw = yaw + self.turn * angle
        z = (self.amplitude * np.abs(np.sin(angle)) if self.motion == "hopping"
             else np.zeros_like(t))
        pose = np.zeros((len(t), 4, 4))
        pose[:, 0, 0] = np.cos(yaw)
        pose[:, 0, 1] = -np.sin(yaw)
        pose[:, 1, 0] = np.sin(yaw)
        pose[:, 1, 1] = np.cos(yaw)
        pose[:, 2, 2] = 1.0
        pose[:, 0, 3] = x
        pose[:, 1, 3] = y
        pose[:, 2, 3] = z
        pose[:, 3, 3] = 1.0
        return pose

    def describe(self) -> str:
        article = "an" if self.colour[0] in "aeiou" else "a"
        text = f"{article} {self.colour} {self.pattern} {self.shape}"
        return f"{text} {_MOTION_WORDS[self.motion]}" if self.moving else text


@dataclass(frozen=True)
class SceneSpec:
    """Everything needed to render one video, except its size and frame rate."""

    seed: int
    objects: tuple[ObjectSpec, ...]
    camera: CameraPath
    ground_colours: tuple[tuple[float, float, float], tuple[float, float, float]]
    ground_cell: float
    backdrop_colours: tuple[tuple[float, float, float], tuple[float, float, float]]
    backdrop_stripes: int
    light_direction: tuple[float, float, float]  # unit vector towards the light
    texture_seed: int
    ambient: float = AMBIENT
    diffuse: float = DIFFUSE
    light_colour: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @property
    def num_meshes(self) -> int:
        return FIRST_OBJECT_ID + len(self.objects)

    def mesh_poses(self, t: np.ndarray) -> np.ndarray:
        """mesh_to_world (T, M, 4, 4); ground and backdrop are static (identity)."""
        poses = np.tile(np.eye(4), (len(t), self.num_meshes, 1, 1))
        for k, obj in enumerate(self.objects):
            poses[:, FIRST_OBJECT_ID + k] = obj.poses(t)
        return poses

    def caption(self) -> str:
        """One line naming every object, the floor and the camera motion."""
        parts = [obj.describe() for obj in self.objects]
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        return f"{listed} on a checkered floor; {self.camera.describe()}"


def video_seed(base_seed: int, split: str, index: int) -> int:
    """The seed of one video, from (synth.seed, split, index) alone: rerunning it is identical."""
    if split not in _SPLIT_CODES:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(_SPLIT_CODES)}")
    digest = hashlib.sha256(f"longvie-synth/{base_seed}/{split}/{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _colour_pair(
    rng: np.random.Generator, lo: float, hi: float
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Two related muted tones (a base and a darker, shifted variant) for ground/backdrop."""
    base = rng.uniform(lo, hi, size=3)
    other = np.clip(base * rng.uniform(0.45, 0.7) + rng.uniform(-0.05, 0.05, size=3), 0.0, 1.0)
    return tuple(float(v) for v in base), tuple(float(v) for v in other)


@dataclass(frozen=True)
class Choices:
    """What a scene sampler may draw (the standard sets, or those plus the extra ones)."""

    shapes: tuple[str, ...]
    patterns: tuple[str, ...]
    motions: tuple[str, ...]
    colours: tuple[str, ...]
    cameras: tuple[str, ...]


def choices(variety: str) -> Choices:
    if variety == "standard":
        return Choices(SHAPES, PATTERNS, OBJECT_MOTIONS, tuple(COLOURS), CAMERA_MOTIONS)
    if variety == "extended":
        return Choices(SHAPES + EXTRA_SHAPES, PATTERNS + EXTRA_PATTERNS,
                       OBJECT_MOTIONS + EXTRA_MOTIONS, tuple(ALL_COLOURS),
                       CAMERA_MOTIONS + EXTRA_CAMERA_MOTIONS)
    raise ValueError(f"unknown scene variety {variety!r}; expected one of {VARIETIES}")


def _sample_object(rng: np.random.Generator, colour: str, moving: bool,
                   options: Choices | None = None) -> ObjectSpec:
    options = options or choices("standard")
    shape = str(rng.choice(options.shapes))
    size = float(rng.uniform(0.5, 1.0))
    upright = shape in ("box", "cylinder", "cone", "capsule", "pyramid", "prism")
    height = float(rng.uniform(0.6, 1.5)) if upright else 2 * size
    stand_up = shape == "torus" and bool(rng.random() < 0.5)
    if shape == "torus":
        height = 2 * size if stand_up else 0.5 * size
    elif shape == "capsule":
        size = min(size, 0.5 * height)
    axis = rng.normal(size=3)
    motion = str(rng.choice(options.motions)) if moving else "static"
    amplitudes = {"sliding": rng.uniform(0.6, 1.2), "circling": rng.uniform(0.5, 0.9)}
    if "hopping" in options.motions:  # only extended scenes draw it: standard draws unchanged
        amplitudes["hopping"] = rng.uniform(0.3, 0.9)
    amplitude = amplitudes.get(motion, 0.0)
    period = {"sliding": rng.uniform(4.0, 9.0), "circling": rng.uniform(5.0, 11.0)}.get(
        motion, rng.uniform(4.0, 8.0)
    )
    return ObjectSpec(
        shape=shape,
        colour=colour,
        pattern=str(rng.choice(options.patterns)),
        size=size,
        height=height,
        stand_up=stand_up,
        texture_scale=float(size * rng.uniform(0.35, 0.6)),
        texture_axis=tuple(float(v) for v in axis / norm(axis)),
        texture_seed=int(rng.integers(0, 2**31)),
        centre=(0.0, 0.0),
        yaw0=float(rng.uniform(0, 2 * np.pi)),
        motion=motion,
        amplitude=float(amplitude),
        direction=float(rng.uniform(0, np.pi)),
        period=float(period),
        phase=float(rng.uniform(0, 2 * np.pi)),
        turn=float(rng.choice([-1.0, 1.0])),
    )


def _place(rng: np.random.Generator, objects: list[ObjectSpec]) -> list[ObjectSpec]:
    """Rest positions whose swept discs do not overlap, so objects never pass through each other.

    An object that does not fit is shrunk (size and stroke) every 100 tries; after 400 it keeps
    the last candidate (no overlapping pair occurred in 3,000 sampled 3-6 object scenes).
    """
    placed: list[ObjectSpec] = []
    for obj in objects:
        for attempt in range(400):
            if attempt and attempt % 100 == 0:
                obj = _shrunk(obj)
            limit = STAGE_RADIUS - obj.reach
            radius = limit * np.sqrt(rng.random())
            angle = rng.uniform(0, 2 * np.pi)
            centre = np.array([radius * np.cos(angle), radius * np.sin(angle)])
            if all(
                norm(centre - np.array(other.centre)) > obj.reach + other.reach + 0.1
                for other in placed
            ):
                break
        placed.append(replace(obj, centre=(float(centre[0]), float(centre[1]))))
    return placed


def _shrunk(obj: ObjectSpec) -> ObjectSpec:
    return replace(
        obj,
        size=obj.size * 0.8,
        height=obj.height * 0.8,
        amplitude=obj.amplitude * 0.7,
        texture_scale=obj.texture_scale * 0.8,
    )


def sample_scene(
    seed: int, min_objects: int, max_objects: int, moving_fraction: float,
    variety: str = "standard",
) -> SceneSpec:
    """Draw a whole scene from ``seed``; at least one object moves when ``moving_fraction`` > 0.

    ``extended`` (the pretraining corpus) adds shapes, patterns, colours, a hopping motion, a
    crane camera and random light strength and colour to the standard draws.
    """
    options = choices(variety)
    rng = np.random.default_rng(seed)
    count = int(rng.integers(min_objects, max_objects + 1))
    moving_count = int(round(moving_fraction * count))
    if moving_fraction > 0:
        moving_count = max(1, moving_count)
    moving = np.zeros(count, dtype=bool)
    moving[rng.permutation(count)[:moving_count]] = True
    names = list(options.colours)
    colours = [names[i] for i in rng.permutation(len(names))[:count]] if count <= len(names) else [
        str(rng.choice(names)) for _ in range(count)
    ]
    objects = _place(rng, [_sample_object(rng, colours[k], bool(moving[k]), options)
                           for k in range(count)])
    camera = sample_camera_path(rng, str(rng.choice(options.cameras)))
    elevation = rng.uniform(np.radians(35), np.radians(65))
    azimuth = rng.uniform(0, 2 * np.pi)
    light = (
        float(np.cos(elevation) * np.cos(azimuth)),
        float(np.cos(elevation) * np.sin(azimuth)),
        float(np.sin(elevation)),
    )
    lighting = {}
    if variety == "extended":
        tint = rng.uniform(-0.12, 0.12)
        lighting = {"ambient": float(rng.uniform(0.2, 0.5)), "diffuse": float(rng.uniform(0.5, 1.0)),
                    "light_colour": (float(1 + tint), 1.0, float(1 - tint))}
    return SceneSpec(
        seed=seed,
        objects=tuple(objects),
        camera=camera,
        ground_colours=_colour_pair(rng, 0.55, 0.85),
        ground_cell=float(rng.uniform(0.7, 1.3)),
        backdrop_colours=_colour_pair(rng, 0.4, 0.9),
        backdrop_stripes=int(rng.integers(16, 40)),
        light_direction=light,
        texture_seed=int(rng.integers(0, 2**31)),
        **lighting,
    )
