"""Triangle meshes of a scene in their local frames, and the flat arrays the ground truth stores.

Every object mesh stands on z = 0 centred on its local vertical axis, so its pose is just a yaw
and a ground position. The backdrop is a closed cylinder turned inside out (normals face the
camera) that encloses everything, so every camera ray hits some surface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
import trimesh.creation

from longvie.synth.scene import ObjectSpec, SceneSpec

GROUND_HALF_SIZE = 18.0
BACKDROP_RADIUS = 16.0
BACKDROP_HEIGHT = 14.0


@dataclass(frozen=True, eq=False)
class MeshSet:
    """M meshes as concatenated arrays: mesh i owns vertices/faces ``offsets[i]:offsets[i+1]``.

    ``faces`` index into their own mesh's vertices (as stored in the ground truth);
    ``global_faces`` index into the concatenated vertex array.
    """

    vertices: np.ndarray  # (V, 3) float64, local coordinates
    faces: np.ndarray  # (F, 3) int32
    vertex_offsets: np.ndarray  # (M + 1,) int64
    face_offsets: np.ndarray  # (M + 1,) int64

    @property
    def count(self) -> int:
        return len(self.vertex_offsets) - 1

    @property
    def vertex_mesh(self) -> np.ndarray:
        """Mesh index of every vertex (V,)."""
        return np.repeat(np.arange(self.count), np.diff(self.vertex_offsets))

    @property
    def face_mesh(self) -> np.ndarray:
        """Mesh index of every face (F,)."""
        return np.repeat(np.arange(self.count), np.diff(self.face_offsets))

    @property
    def global_faces(self) -> np.ndarray:
        return self.faces.astype(np.int64) + self.vertex_offsets[self.face_mesh][:, None]

    def mesh(self, index: int) -> trimesh.Trimesh:
        """Mesh ``index`` alone, in its local frame."""
        v0, v1 = self.vertex_offsets[index], self.vertex_offsets[index + 1]
        f0, f1 = self.face_offsets[index], self.face_offsets[index + 1]
        return trimesh.Trimesh(self.vertices[v0:v1], self.faces[f0:f1], process=False)

    @classmethod
    def from_meshes(cls, meshes: list[trimesh.Trimesh]) -> MeshSet:
        vertex_counts = [len(m.vertices) for m in meshes]
        face_counts = [len(m.faces) for m in meshes]
        return cls(
            vertices=np.concatenate([np.asarray(m.vertices, dtype=np.float64) for m in meshes]),
            faces=np.concatenate([np.asarray(m.faces) for m in meshes]).astype(np.int32),
            vertex_offsets=np.concatenate([[0], np.cumsum(vertex_counts)]).astype(np.int64),
            face_offsets=np.concatenate([[0], np.cumsum(face_counts)]).astype(np.int64),
        )


def _ground() -> trimesh.Trimesh:
    h = GROUND_HALF_SIZE
    vertices = np.array([[-h, -h, 0.0], [h, -h, 0.0], [h, h, 0.0], [-h, h, 0.0]])
    return trimesh.Trimesh(vertices, np.array([[0, 1, 2], [0, 2, 3]]), process=False)


def _backdrop() -> trimesh.Trimesh:
    shell = trimesh.creation.cylinder(radius=BACKDROP_RADIUS, height=BACKDROP_HEIGHT, sections=48)
    shell.apply_translation([0.0, 0.0, BACKDROP_HEIGHT / 2.0 - 0.5])
    shell.invert()
    return shell


def _primitive(obj: ObjectSpec) -> trimesh.Trimesh:
    """The unit-free primitive scaled to the object's size, base on z = 0, axis at the origin."""
    r, h = obj.size, obj.height
    if obj.shape == "sphere":
        mesh = trimesh.creation.icosphere(subdivisions=2, radius=r)
    elif obj.shape == "box":
        side = r * np.sqrt(2.0)  # horizontal bounding radius of a square of this side is r
        mesh = trimesh.creation.box(extents=(side, side * 0.8, h))
    elif obj.shape == "cylinder":
        mesh = trimesh.creation.cylinder(radius=r, height=h, sections=24)
    elif obj.shape == "cone":
        mesh = trimesh.creation.cone(radius=r, height=h, sections=24)
    elif obj.shape == "pyramid":
        mesh = trimesh.creation.cone(radius=r, height=h, sections=4)
    elif obj.shape == "prism":
        mesh = trimesh.creation.cylinder(radius=r, height=h, sections=6)
    elif obj.shape == "capsule":
        mesh = trimesh.creation.capsule(height=max(h - 2 * r, 1e-3), radius=r, count=[12, 12])
    elif obj.shape == "torus":
        minor = 0.3 * r
        mesh = trimesh.creation.torus(
            major_radius=r - minor, minor_radius=minor, major_sections=24, minor_sections=10
        )
        if obj.stand_up:
            mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")
    low, high = mesh.bounds
    mesh.apply_translation([-(low[0] + high[0]) / 2.0, -(low[1] + high[1]) / 2.0, -low[2]])
    return mesh


def build_meshes(scene: SceneSpec) -> MeshSet:
    """Ground, backdrop and every object of ``scene`` (mesh order = object ids)."""
    return MeshSet.from_meshes([_ground(), _backdrop(), *(_primitive(o) for o in scene.objects)])
