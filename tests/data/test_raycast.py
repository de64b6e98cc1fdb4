"""The ray caster answers in float64 what embree proposes in float32: rays on an edge, through a
vertex or a hair's breadth beside a silhouette get the same face on every CPU."""

from __future__ import annotations

import numpy as np
import trimesh

from longvie.synth.meshes import MeshSet
from longvie.synth.raycast import FrameScene


def _scene(*meshes: trimesh.Trimesh) -> FrameScene:
    mesh_set = MeshSet.from_meshes(list(meshes))
    return FrameScene(mesh_set, np.tile(np.eye(4), (mesh_set.count, 1, 1)))


def _plane(z: float, half: float) -> trimesh.Trimesh:
    """A square at height ``z`` split along its diagonal (x = y) into two triangles."""
    vertices = np.array([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]])
    return trimesh.Trimesh(vertices, np.array([[0, 1, 2], [0, 2, 3]]), process=False)


def _fan(z: float, sections: int = 7) -> trimesh.Trimesh:
    """A polygon at height ``z`` made of ``sections`` triangles around its centre vertex."""
    angles = 2 * np.pi * (np.arange(sections) + 0.3) / sections
    rim = np.stack([np.cos(angles), np.sin(angles), np.full(sections, z)], axis=1)
    vertices = np.vstack([[0.0, 0.0, z], rim])
    faces = [[0, 1 + k, 1 + (k + 1) % sections] for k in range(sections)]
    return trimesh.Trimesh(vertices, np.array(faces), process=False)


def _down(points_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    origins = np.column_stack([points_xy, np.full(len(points_xy), 10.0)])
    return origins, np.tile([0.0, 0.0, -1.0], (len(points_xy), 1))


def test_a_ray_on_a_shared_edge_hits_the_lower_face_at_the_exact_depth():
    scene = _scene(_plane(0.0, 1.0))
    on_diagonal = np.array([[0.25, 0.25], [-0.6, -0.6], [1e-9, 1e-9]])
    hits = scene.cast(*_down(on_diagonal))
    assert hits.face.tolist() == [0, 0, 0]
    assert np.all(hits.distance == 10.0)


def test_a_ray_through_a_vertex_shared_by_a_fan_hits_the_lowest_face():
    """Three probes around the centre cannot all land in the one face the ray's float64 test
    picks; the faces around the proposals' vertices are tried too, so the ray never misses."""
    scene = _scene(_fan(0.0), _plane(-1.0, 5.0))
    hits = scene.cast(*_down(np.zeros((1, 2))))
    assert hits.face.tolist() == [0]
    assert hits.mesh.tolist() == [0]
    assert hits.distance.tolist() == [10.0]


def test_a_silhouette_is_decided_in_float64_not_float32():
    """A ray 1e-9 inside the front square's edge hits it; 1e-9 outside hits the floor behind.
    float32 cannot tell these apart (its step near 1.0 is 1.2e-7); the answer must not depend
    on which of embree's kernels the CPU runs."""
    scene = _scene(_plane(1.0, 1.0), _plane(0.0, 5.0))
    xy = np.array([[1.0 - 1e-9, 0.3], [1.0 + 1e-9, 0.3], [0.3, -1.0 + 1e-9], [0.3, -1.0 - 1e-9]])
    hits = scene.cast(*_down(xy))
    assert hits.mesh.tolist() == [0, 1, 0, 1]
    assert hits.distance.tolist() == [9.0, 10.0, 9.0, 10.0]


def test_rays_that_leave_the_scene_miss():
    scene = _scene(_plane(0.0, 1.0))
    origins, directions = _down(np.array([[3.0, 3.0], [0.1, 0.2]]))
    hits = scene.cast(origins, directions)
    assert hits.mesh.tolist() == [-1, 0]
    assert hits.distance[0] == np.inf


def test_a_ray_through_a_gap_narrower_than_the_probes_hits_what_lies_behind():
    """Two squares 1e-6 apart: every probe lands on one of them, none holds the ray, and the
    faces around their vertices do not reach the floor behind: every face is tried."""
    left = _plane(1.0, 1.0)
    left.vertices[:, 0] -= 1.0 + 5e-7  # x in [-2, -5e-7]
    right = _plane(1.0, 1.0)
    right.vertices[:, 0] += 1.0 + 5e-7  # x in [5e-7, 2]
    scene = _scene(left, right, _plane(0.0, 5.0))
    hits = scene.cast(*_down(np.array([[0.0, 0.3]])))
    assert hits.mesh.tolist() == [2]
    assert hits.distance.tolist() == [10.0]
