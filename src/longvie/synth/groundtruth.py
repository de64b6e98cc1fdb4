"""The per-video ground truth (``scene_NNNN.gt.npz``): reader and point tracking on it.

The file stores the meshes and their per-frame poses, so any consumer can rebuild the exact
scene of any frame. :func:`track_points` does that to follow arbitrary query points, and the
renderer stores its grid tracks through the very same function, so there is one implementation.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, fields
from os import PathLike

import numpy as np

from longvie.synth.camera import pixel_directions, project
from longvie.synth.exact import norm, rigid_inverse, rotate, rotate_back, unit
from longvie.synth.meshes import MeshSet
from longvie.synth.raycast import FrameScene

# A point is occluded when something lies this much closer along its ray (relative + absolute);
# it absorbs the float32 triangle choice of embree at shared edges and silhouettes.
OCCLUSION_RELATIVE = 1e-3
OCCLUSION_ABSOLUTE = 1e-4
# Points closer than this in camera z are "behind" the camera.
NEAR = 1e-6


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """All arrays of one ``.gt.npz`` (T frames of H x W, M meshes, N grid tracks)."""

    depth: np.ndarray  # (T, H, W) float32 camera-space z
    object_id: np.ndarray  # (T, H, W) uint8 mesh seen by each pixel
    K: np.ndarray  # (3, 3) float64 intrinsics, OpenCV, pixel centres at integers
    cam_to_world: np.ndarray  # (T, 4, 4) float64
    mesh_to_world: np.ndarray  # (T, M, 4, 4) float64
    mesh_vertices: np.ndarray  # (V, 3) float64 local coordinates, meshes concatenated
    mesh_faces: np.ndarray  # (F, 3) int32 indices into each mesh's own vertices
    mesh_vertex_offsets: np.ndarray  # (M + 1,) int64
    mesh_face_offsets: np.ndarray  # (M + 1,) int64
    track_query_xy: np.ndarray  # (N, 2) float32 grid of frame-0 pixels
    track_mesh: np.ndarray  # (N,) int32
    track_points_local: np.ndarray  # (N, 3) float64 in the mesh's local frame
    track_xy: np.ndarray  # (T, N, 2) float32, NaN where the point is behind the camera
    track_visible: np.ndarray  # (T, N) bool

    @property
    def num_frames(self) -> int:
        return int(self.depth.shape[0])

    @property
    def height(self) -> int:
        return int(self.depth.shape[1])

    @property
    def width(self) -> int:
        return int(self.depth.shape[2])

    @property
    def meshes(self) -> MeshSet:
        return MeshSet(
            vertices=self.mesh_vertices,
            faces=self.mesh_faces,
            vertex_offsets=self.mesh_vertex_offsets,
            face_offsets=self.mesh_face_offsets,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """Name -> array, in file order."""
        return {name: getattr(self, name) for name in ARRAY_NAMES}


ARRAY_NAMES = tuple(f.name for f in fields(GroundTruth))


# The per-pixel arrays: they grow with the video's length, everything else is small.
FRAME_ARRAYS = ("depth", "object_id")


class StreamedFrames:
    """Frame-by-frame read access to a (T, ...) array inside an ``.npz``, without loading it.

    The member is decompressed forward as frames are asked for, so reading a long video's depth
    in order holds one frame; asking for an earlier frame than the last re-opens the member (the
    last frame is kept, because consecutive clips share one). Quacks like the array for
    ``shape``, ``len`` and integer indexing, which is all per-frame consumers use.
    """

    def __init__(self, npz_path: str | PathLike[str], name: str) -> None:
        self._path, self._member = npz_path, f"{name}.npy"
        self._archive = self._stream = None
        self._open()

    def _open(self) -> None:
        self.close()
        self._archive = zipfile.ZipFile(self._path)
        self._stream = self._archive.open(self._member)
        version = np.lib.format.read_magic(self._stream)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = read_header(self._stream)
        if fortran_order:
            raise ValueError(f"{self._path}:{self._member} is Fortran-ordered")
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._frame_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._next, self._last = 0, None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> np.ndarray:
        index = int(index)
        if not 0 <= index < self.shape[0]:
            raise IndexError(f"frame {index} outside [0, {self.shape[0]})")
        if self._last is not None and index == self._next - 1:
            return self._last
        if index < self._next:
            self._open()
        while self._next <= index:
            raw = self._stream.read(self._frame_bytes)
            if len(raw) != self._frame_bytes:
                raise ValueError(f"{self._path}:{self._member} ends before frame {self._next}")
            self._next += 1
        self._last = np.frombuffer(raw, dtype=self.dtype).reshape(self.shape[1:])
        return self._last

    def close(self) -> None:
        for handle in (self._stream, self._archive):
            if handle is not None:
                handle.close()
        self._archive = self._stream = None


def load_groundtruth(npz_path: str | PathLike[str], stream_frames: bool = False) -> GroundTruth:
    """Read a ``.gt.npz`` written by the renderer.

    With ``stream_frames`` the per-pixel arrays (depth, object ids) are :class:`StreamedFrames`,
    so memory does not grow with the video's length; everything else is loaded.
    """
    with np.load(npz_path) as data:
        missing = [name for name in ARRAY_NAMES if name not in data.files]
        if missing:
            raise ValueError(f"{npz_path} lacks ground-truth arrays {missing}")
        arrays = {
            name: StreamedFrames(npz_path, name) if stream_frames and name in FRAME_ARRAYS
            else data[name]
            for name in ARRAY_NAMES
        }
    return GroundTruth(**arrays)


@dataclass(frozen=True, eq=False)
class Tracks:
    """Query points anchored to mesh surfaces, and where they appear in each requested frame."""

    mesh: np.ndarray  # (N,) int32
    points_local: np.ndarray  # (N, 3) float64
    xy: np.ndarray  # (T', N, 2) float32
    visible: np.ndarray  # (T', N) bool


def _camera_rays(gt: GroundTruth, frame: int, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pose = gt.cam_to_world[frame]
    directions = unit(rotate(pose[:3, :3], pixel_directions(gt.K, xy)))
    return np.broadcast_to(pose[:3, 3], directions.shape).copy(), directions


def _anchor(
    gt: GroundTruth, frame_index: int, query_xy: np.ndarray, scene: FrameScene
) -> tuple[np.ndarray, np.ndarray]:
    """The surface point under each query pixel at ``frame_index``, in its mesh's local frame.

    The query ray is cast through that frame's scene: at pixel centres this is the point the
    depth map and object_id describe, and between pixel centres it is still exactly on a surface.
    """
    origins, directions = _camera_rays(gt, frame_index, query_xy)
    hits = scene.cast(origins, directions)
    if np.any(hits.mesh < 0):
        raise ValueError("a query ray hit no surface; the scene is not enclosed")
    world = origins + directions * hits.distance[:, None]
    poses = gt.mesh_to_world[frame_index][hits.mesh]
    local = rotate_back(poses[:, :3, :3], world - poses[:, :3, 3])
    return hits.mesh.astype(np.int32), local


def _follow(
    gt: GroundTruth,
    mesh: np.ndarray,
    local: np.ndarray,
    frame: int,
    scene: FrameScene | None,
    faces: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel position (N, 2) and ray-cast visibility (N,) of anchored points in one frame.

    "Inside the image" is the half-open pixel area [-0.5, W - 0.5) x [-0.5, H - 0.5), so rounding
    a visible point always gives a valid pixel index.
    The frame's scene is built only when some point is in view (``scene`` may pass a built one).
    """
    poses = gt.mesh_to_world[frame][mesh]
    world = rotate(poses[:, :3, :3], local) + poses[:, :3, 3]
    cam_to_world = gt.cam_to_world[frame]
    xy, z = project(gt.K, rigid_inverse(cam_to_world), world)
    front = z > NEAR
    xy[~front] = np.nan
    inside = (
        front
        & (xy[:, 0] >= -0.5)
        & (xy[:, 0] < gt.width - 0.5)
        & (xy[:, 1] >= -0.5)
        & (xy[:, 1] < gt.height - 0.5)
    )
    visible = np.zeros(len(mesh), dtype=bool)
    candidates = np.flatnonzero(inside)
    if len(candidates):
        if scene is None:
            scene = FrameScene(gt.meshes, gt.mesh_to_world[frame], faces)
        centre = cam_to_world[:3, 3]
        offset = world[candidates] - centre
        distance = norm(offset)
        directions = offset / distance[:, None]
        hits = scene.cast(np.broadcast_to(centre, offset.shape).copy(), directions)
        slack = distance * OCCLUSION_RELATIVE + OCCLUSION_ABSOLUTE
        visible[candidates] = hits.distance >= distance - slack
    return xy, visible


def query_tracks(
    gt: GroundTruth,
    frame_index: int,
    query_xy: np.ndarray,
    frames: Sequence[int] | np.ndarray | None = None,
) -> Tracks:
    """Anchor ``query_xy`` (N, 2) at ``frame_index``; follow them through ``frames`` (default all).

    Each frame's scene is rebuilt from the stored meshes and poses; visibility means in front of
    the camera, inside the image and not occluded along the ray from the camera centre.
    """
    if not 0 <= frame_index < gt.num_frames:
        raise IndexError(f"frame_index {frame_index} outside [0, {gt.num_frames})")
    query = np.asarray(query_xy, dtype=np.float64).reshape(-1, 2)
    chosen = np.arange(gt.num_frames) if frames is None else np.asarray(frames, dtype=np.int64)
    meshes = gt.meshes
    faces = meshes.global_faces
    anchor_scene = FrameScene(meshes, gt.mesh_to_world[frame_index], faces)
    mesh, local = _anchor(gt, frame_index, query, anchor_scene)
    xy = np.empty((len(chosen), len(query), 2), dtype=np.float32)
    visible = np.empty((len(chosen), len(query)), dtype=bool)
    for row, frame in enumerate(chosen):
        scene = anchor_scene if frame == frame_index else None
        xy[row], visible[row] = _follow(gt, mesh, local, int(frame), scene, faces)
    return Tracks(mesh=mesh, points_local=local, xy=xy, visible=visible)


def track_points(
    gt: GroundTruth,
    frame_index: int,
    query_xy: np.ndarray,
    frames: Sequence[int] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Tracks of pixels ``query_xy`` (N, 2) picked on frame ``frame_index``.

    Returns (xy (T, N, 2) float32, visible (T, N) bool) over all T frames, or over ``frames`` when
    given (clip consumers need only a few). xy is NaN where the point is behind the camera.
    """
    tracks = query_tracks(gt, frame_index, query_xy, frames)
    return tracks.xy, tracks.visible


def grid_queries(width: int, height: int, grid: int) -> np.ndarray:
    """A grid x grid uniform grid of pixel centres (N, 2) float32, row-major (y outer, x inner)."""
    xs = np.floor((np.arange(grid) + 0.5) * width / grid)
    ys = np.floor((np.arange(grid) + 0.5) * height / grid)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
