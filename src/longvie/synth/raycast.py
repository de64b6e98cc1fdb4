"""One frame's posed scene as a single embree-backed mesh, and first-hit ray queries on it.

All meshes are merged into one ``trimesh.Trimesh`` per frame (faces remember their mesh), so each
query is one embree call. Embree picks the hit triangle in float32; the hit distance is then
recomputed in float64 against that triangle's plane, which keeps depth and track visibility exact
to ~1e-9 of the scene size rather than to float32 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from trimesh.ray.ray_pyembree import RayMeshIntersector

from longvie.synth.meshes import MeshSet

# Directions of the rare rays that slip through a crack between two float32 triangles get nudged
# by this much (radians) and cast again.
_NUDGE = 2e-5


@dataclass(frozen=True, eq=False)
class Hits:
    """First hits of N rays; rays that hit nothing have mesh -1 and distance inf."""

    face: np.ndarray  # (N,) int64 index into the frame's merged faces
    mesh: np.ndarray  # (N,) int64
    distance: np.ndarray  # (N,) float64 along the unit direction
    normal: np.ndarray  # (N, 3) float64 unit geometric normal (as wound, world frame)


class FrameScene:
    """The meshes of a :class:`MeshSet` placed by their ``mesh_to_world`` poses (M, 4, 4)."""

    def __init__(
        self,
        meshes: MeshSet,
        mesh_to_world: np.ndarray,
        global_faces: np.ndarray | None = None,
    ):
        self.meshes = meshes
        self.mesh_to_world = mesh_to_world
        world = np.empty_like(meshes.vertices)
        offsets = meshes.vertex_offsets
        for index in range(meshes.count):
            block = slice(offsets[index], offsets[index + 1])
            pose = mesh_to_world[index]
            world[block] = meshes.vertices[block] @ pose[:3, :3].T + pose[:3, 3]
        self.vertices = world
        self.faces = meshes.global_faces if global_faces is None else global_faces
        self.face_mesh = meshes.face_mesh
        self._intersector = RayMeshIntersector(trimesh.Trimesh(world, self.faces, process=False))

    def cast(self, origins: np.ndarray, directions: np.ndarray) -> Hits:
        """First hits of rays from ``origins`` (N, 3) along unit ``directions`` (N, 3)."""
        face = np.asarray(self._intersector.intersects_first(origins, directions), dtype=np.int64)
        missed = np.flatnonzero(face < 0)
        for attempt in (1, 2):
            if len(missed) == 0:
                break
            nudged = directions[missed] + _NUDGE * attempt * np.array([0.57735, -0.57735, 0.57735])
            retry = np.asarray(
                self._intersector.intersects_first(origins[missed], nudged), dtype=np.int64
            )
            face[missed] = retry
            missed = missed[retry < 0]
        hit = face >= 0
        safe = np.where(hit, face, 0)
        corners = self.vertices[self.faces[safe]]
        normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-300)
        facing = np.einsum("ij,ij->i", normal, directions)
        along = np.einsum("ij,ij->i", normal, corners[:, 0] - origins)
        grazing = np.abs(facing) < 1e-9
        with np.errstate(divide="ignore", invalid="ignore"):
            distance = np.where(
                grazing,
                np.einsum("ij,ij->i", corners[:, 0] - origins, directions),
                along / np.where(grazing, 1.0, facing),
            )
        distance = np.where(hit, distance, np.inf)
        mesh = np.where(hit, self.face_mesh[safe], -1).astype(np.int64)
        return Hits(face=np.where(hit, face, -1), mesh=mesh, distance=distance, normal=normal)
