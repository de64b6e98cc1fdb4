"""Surface colour: procedural albedo per mesh and Lambert lighting with hard shadows.

Albedo is a function of the point in the mesh's local frame (world frame for the static ground
and backdrop), so texture moves rigidly with its object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from longvie.synth import textures
from longvie.synth.meshes import BACKDROP_HEIGHT, BACKDROP_RADIUS
from longvie.synth.scene import ALL_COLOURS, SceneSpec

_WHITE = np.array([0.95, 0.95, 0.9])


@dataclass(frozen=True, eq=False)
class Material:
    """How one mesh is coloured: a pattern kind, two colours and pattern parameters."""

    kind: str  # "ground", "backdrop", "striped", "checkered" or "speckled"
    colour: np.ndarray  # (3,) main colour
    second: np.ndarray  # (3,) the other colour of the pattern
    scale: float  # cell / stripe period / feature size in local units (stripe count: backdrop)
    axis: np.ndarray  # (3,) unit stripe direction
    seed: int


def scene_materials(scene: SceneSpec) -> list[Material]:
    """Materials in mesh order (ground, backdrop, objects)."""
    materials = [
        Material(
            kind="ground",
            colour=np.array(scene.ground_colours[0]),
            second=np.array(scene.ground_colours[1]),
            scale=scene.ground_cell,
            axis=np.zeros(3),
            seed=scene.texture_seed,
        ),
        Material(
            kind="backdrop",
            colour=np.array(scene.backdrop_colours[0]),
            second=np.array(scene.backdrop_colours[1]),
            scale=float(scene.backdrop_stripes),
            axis=np.zeros(3),
            seed=scene.texture_seed + 1,
        ),
    ]
    for obj in scene.objects:
        colour = np.array(ALL_COLOURS[obj.colour])
        if obj.pattern == "striped":
            bright = colour.mean() > 0.7
            second = colour * 0.25 if bright else 0.25 * colour + 0.75 * _WHITE
        elif obj.pattern == "checkered":
            second = colour * 0.3
        else:
            second = colour * 0.2
        materials.append(
            Material(
                kind=obj.pattern,
                colour=colour,
                second=second,
                scale=obj.texture_scale,
                axis=np.array(obj.texture_axis),
                seed=obj.texture_seed,
            )
        )
    return materials


def _mix(second: np.ndarray, colour: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return second + (colour - second) * weight[:, None]


def albedo(material: Material, points: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """RGB albedo (N, 3) in [0, 1] of points (N, 3) in the mesh's local frame."""
    kind, scale = material.kind, material.scale
    if kind == "ground":
        weight = textures.checker(points, scale, footprint)
        grain = textures.fractal_noise(points, 1.2, material.seed, footprint)
        return _mix(material.second, material.colour, weight) * (0.6 + 0.8 * grain)[:, None]
    if kind == "backdrop":
        arc = np.arctan2(points[:, 1], points[:, 0]) * BACKDROP_RADIUS
        unrolled = np.stack([arc, points[:, 2], np.zeros(len(points))], axis=1)
        period = 2.0 * np.pi * BACKDROP_RADIUS / scale
        weight = textures.stripes(unrolled, np.array([1.0, 0.0, 0.0]), period, footprint)
        grain = textures.fractal_noise(points, 0.6, material.seed, footprint)
        height = np.clip(points[:, 2] / BACKDROP_HEIGHT, 0.0, 1.0)
        shade = (1.15 - 0.5 * height) * (0.65 + 0.7 * grain)
        return _mix(material.second, material.colour, weight) * shade[:, None]
    grain = textures.fractal_noise(points, 3.0 / scale, material.seed + 7, footprint, octaves=2)
    if kind == "striped":
        weight = textures.stripes(points, material.axis, 2.0 * scale, footprint)
    elif kind == "checkered":
        weight = textures.checker(points, scale, footprint)
    elif kind == "plain":
        weight = np.ones(len(points))
    elif kind == "ringed":
        weight = textures.rings(points, 2.0 * scale, footprint)
    elif kind == "speckled":
        noise = textures.fractal_noise(points, 1.0 / scale, material.seed, footprint)
        weight = np.clip((noise - 0.5) * 3.0 + 0.5, 0.0, 1.0)
    else:
        raise ValueError(f"unknown material kind {kind!r}")
    return _mix(material.second, material.colour, weight) * (0.85 + 0.3 * grain)[:, None]


def lambert(albedo_rgb: np.ndarray, cosine: np.ndarray, shadowed: np.ndarray,
            scene: SceneSpec) -> np.ndarray:
    """Ambient plus directional light of ``scene``; ``cosine`` = n . l with n facing the camera."""
    direct = scene.diffuse * np.clip(cosine, 0.0, None) * (~shadowed)
    light = albedo_rgb * (scene.ambient + direct)[:, None]
    if scene.light_colour != (1.0, 1.0, 1.0):
        light = light * np.array(scene.light_colour)
    return np.clip(light, 0.0, 1.0)
