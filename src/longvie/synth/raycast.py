"""One frame's posed scene as a single embree-backed mesh, and first-hit ray queries on it.

All meshes are merged into one ``trimesh.Trimesh`` per frame (faces remember their mesh), so each
query is a few embree calls. Embree answers in float32 and picks its kernels by the CPU's vector
extensions (SSE4.2, AVX2, AVX-512), which round differently: a ray that grazes an edge hits one
face on one CPU and its neighbour, or the surface behind, on another. So embree only proposes
candidates, and float64 decides:

- each ray is cast as three probes shifted sideways by ``_PROBE_OFFSET`` of the scene's extent
  (the corners of an equilateral triangle centred on the ray, far beyond float32 rounding);
- where the probes agree, the ray is inside that face (a convex face holding three points holds
  their centre): that face, or a miss, is the answer;
- where they disagree, the ray lies within the offset of an edge: every proposed face is tested
  against the exact ray in float64 (Moeller-Trumbore, edges inclusive), and the nearest hit wins,
  ties going to the lower face index. Near a vertex the probes can straddle the face the ray
  hits; when no proposal holds the ray, the faces around the proposals' vertices are tested too,
  and when none of those does either (a gap between two objects narrower than the probes'
  spread), every face of the frame.

A probe that grazes an edge may change with the CPU, but the other two still propose the face the
centre lies in, and the float64 test, made of IEEE element-wise operations only, gives the same
answer everywhere. Depth and the geometric normal come from the chosen face in float64 too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from trimesh.ray.ray_pyembree import RayMeshIntersector

from longvie.synth.exact import cross, dot, norm, rotate, unit
from longvie.synth.meshes import MeshSet

# Directions of the rare rays that slip through a crack between two float32 triangles get nudged
# by this much (radians) and cast again.
_NUDGE = 2e-5
# Sideways shift of the three probe rays, as a fraction of the scene's bounding-box diagonal:
# about 1e3 float32 ulps of the scene's coordinates, far below a pixel's footprint.
_PROBE_OFFSET = 2e-5
_PROBE_ANGLES = np.deg2rad([90.0, 210.0, 330.0])
# Barycentric slack of the float64 test, so a ray on a shared edge hits both faces (the lower
# index wins) instead of slipping between them.
_EDGE_SLACK = 1e-12
# Hits this close (relative) count as a tie, broken by face index.
_TIE = 1e-9


@dataclass(frozen=True, eq=False)
class Hits:
    """First hits of N rays; rays that hit nothing have mesh -1 and distance inf."""

    face: np.ndarray  # (N,) int64 index into the frame's merged faces
    mesh: np.ndarray  # (N,) int64
    distance: np.ndarray  # (N,) float64 along the unit direction
    normal: np.ndarray  # (N, 3) float64 unit geometric normal (as wound, world frame)


def _sideways_basis(directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors (N, 3) perpendicular to each direction and to each other."""
    helper = np.zeros_like(directions)
    helper[np.arange(len(directions)), np.argmin(np.abs(directions), axis=1)] = 1.0
    first = unit(cross(directions, helper))
    return first, unit(cross(directions, first))


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
            world[block] = rotate(pose[:3, :3], meshes.vertices[block]) + pose[:3, 3]
        self.vertices = world
        self.faces = meshes.global_faces if global_faces is None else global_faces
        self.face_mesh = meshes.face_mesh
        extent = world.max(axis=0) - world.min(axis=0)
        self.probe_offset = _PROBE_OFFSET * float(norm(extent))
        self._intersector = RayMeshIntersector(trimesh.Trimesh(world, self.faces, process=False))

    def _embree_faces(self, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
        return np.asarray(self._intersector.intersects_first(origins, directions), dtype=np.int64)

    def _candidates(self, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """(N, 3) faces proposed by embree for the three probes around each ray (-1: no hit)."""
        first, second = _sideways_basis(directions)
        shifts = [
            self.probe_offset * (np.cos(angle) * first + np.sin(angle) * second)
            for angle in _PROBE_ANGLES
        ]
        probes = np.concatenate([origins + shift for shift in shifts])
        faces = self._embree_faces(probes, np.concatenate([directions] * len(shifts)))
        return faces.reshape(len(shifts), len(origins)).T

    def _nearest_exact(
        self, origins: np.ndarray, directions: np.ndarray, candidates: np.ndarray
    ) -> np.ndarray:
        """The candidate (N,) the exact ray hits first in float64, or -1 if it hits none."""
        corners = self.vertices[self.faces[np.maximum(candidates, 0)]]  # (N, C, 3, 3)
        direction = directions[:, None, :]
        edge1 = corners[:, :, 1] - corners[:, :, 0]
        edge2 = corners[:, :, 2] - corners[:, :, 0]
        p = cross(direction, edge2)
        det = dot(edge1, p)
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = 1.0 / det
            s = origins[:, None, :] - corners[:, :, 0]
            u = dot(s, p) * inverse
            q = cross(s, edge1)
            v = dot(direction, q) * inverse
            t = dot(edge2, q) * inverse
        hit = (
            (candidates >= 0)
            & (np.abs(det) > 1e-300)
            & (u >= -_EDGE_SLACK)
            & (v >= -_EDGE_SLACK)
            & (u + v <= 1.0 + _EDGE_SLACK)
            & (t > 0.0)
        )
        t = np.where(hit, t, np.inf)
        nearest = t.min(axis=1, keepdims=True)
        tied = hit & (t <= nearest * (1.0 + _TIE))
        big = np.iinfo(np.int64).max
        face = np.where(tied, candidates, big).min(axis=1)
        return np.where(face == big, -1, face)

    def _faces_around(self, faces: np.ndarray) -> np.ndarray:
        """Every face sharing a vertex with one of ``faces`` (the proposals' one-ring), sorted."""
        vertices = np.unique(self.faces[faces[faces >= 0]])
        return np.flatnonzero(np.isin(self.faces, vertices).any(axis=1))

    def _first_faces(self, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
        candidates = self._candidates(origins, directions)
        face = candidates[:, 0].copy()
        mixed = np.flatnonzero(np.any(candidates != candidates[:, :1], axis=1))
        face[mixed] = self._nearest_exact(origins[mixed], directions[mixed], candidates[mixed])
        every_face = None
        for row in mixed[face[mixed] < 0]:  # a handful a frame: rays through a vertex's fan
            one = slice(row, row + 1)
            around = self._faces_around(candidates[row])[None, :]
            face[row] = self._nearest_exact(origins[one], directions[one], around)[0]
            if face[row] < 0:  # through a gap narrower than the probes' spread: try them all
                if every_face is None:
                    every_face = np.arange(len(self.faces))[None, :]
                face[row] = self._nearest_exact(origins[one], directions[one], every_face)[0]
        return face

    def cast(self, origins: np.ndarray, directions: np.ndarray) -> Hits:
        """First hits of rays from ``origins`` (N, 3) along unit ``directions`` (N, 3)."""
        face = self._first_faces(origins, directions)
        missed = np.flatnonzero(face < 0)
        for attempt in (1, 2):
            if len(missed) == 0:
                break
            nudged = directions[missed] + _NUDGE * attempt * np.array([0.57735, -0.57735, 0.57735])
            retry = self._first_faces(origins[missed], nudged)
            face[missed] = retry
            missed = missed[retry < 0]
        hit = face >= 0
        safe = np.where(hit, face, 0)
        corners = self.vertices[self.faces[safe]]
        normal = unit(cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]))
        facing = dot(normal, directions)
        along = dot(normal, corners[:, 0] - origins)
        grazing = np.abs(facing) < 1e-9
        with np.errstate(divide="ignore", invalid="ignore"):
            distance = np.where(
                grazing,
                dot(corners[:, 0] - origins, directions),
                along / np.where(grazing, 1.0, facing),
            )
        distance = np.where(hit, distance, np.inf)
        mesh = np.where(hit, self.face_mesh[safe], -1).astype(np.int64)
        return Hits(face=np.where(hit, face, -1), mesh=mesh, distance=distance, normal=normal)
