"""Render one video in memory: RGB frames plus the full ground truth.

Per frame: build the posed scene once, cast one ray per (sub)pixel, shade, cast shadow rays.
Depth and object ids are taken at the output pixel centres (the reference grid of K); with
``supersample`` > 1 the RGB is rendered on a finer grid and area-averaged down.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from longvie.config.schema import SynthConfig
from longvie.synth.camera import intrinsics, pixel_directions
from longvie.synth.exact import dot, norm, rotate, rotate_back
from longvie.synth.groundtruth import GroundTruth, grid_queries, query_tracks
from longvie.synth.meshes import build_meshes
from longvie.synth.raycast import FrameScene, Hits
from longvie.synth.scene import BACKDROP_ID, FIRST_OBJECT_ID, SceneSpec, sample_scene, video_seed
from longvie.synth.shading import Material, albedo, lambert, scene_materials

SPLITS = ("train", "benchmark")
# Shadow rays start this far off the surface (scene units) so they do not hit their own triangle.
_SHADOW_OFFSET = 1e-3


@dataclass(frozen=True, eq=False)
class RenderedVideo:
    """One rendered video before encoding."""

    scene: SceneSpec
    split: str
    fps: int
    rgb: np.ndarray  # (T, H, W, 3) uint8
    groundtruth: GroundTruth

    @property
    def num_frames(self) -> int:
        return int(self.rgb.shape[0])

    def metadata(self) -> dict:
        """The ``scene_NNNN.json`` sidecar."""
        height, width = self.rgb.shape[1:3]
        return {
            "caption": self.scene.caption(),
            "seed": self.scene.seed,
            "fps": self.fps,
            "width": int(width),
            "height": int(height),
            "num_frames": self.num_frames,
            "camera_motion": self.scene.camera.motion,
            "objects": [
                {
                    "shape": obj.shape,
                    "colour": obj.colour,
                    "pattern": obj.pattern,
                    "moving": obj.moving,
                    "motion": obj.motion,
                    "mesh_index": FIRST_OBJECT_ID + k,
                }
                for k, obj in enumerate(self.scene.objects)
            ],
            "split": self.split,
        }


def video_frames(synth: SynthConfig, split: str) -> int:
    """Frames of every video of ``split``: round(seconds * fps)."""
    seconds = synth.train_seconds if split == "train" else synth.benchmark_seconds
    return int(round(seconds * synth.fps))


def _sample_offsets(supersample: int) -> np.ndarray:
    """Sub-pixel sample offsets (s,) around a pixel centre, uniformly covering the pixel."""
    return (np.arange(supersample) + 0.5) / supersample - 0.5


class _FrameRenderer:
    """Per-video constants (rays in camera space, materials) reused by every frame."""

    def __init__(self, scene: SceneSpec, K: np.ndarray, width: int, height: int, supersample: int):
        self.materials: list[Material] = scene_materials(scene)
        self.width, self.height, self.s = width, height, supersample
        offsets = _sample_offsets(supersample)
        ys = (np.arange(height)[:, None] + offsets[None, :]).ravel()
        xs = (np.arange(width)[:, None] + offsets[None, :]).ravel()
        gx, gy = np.meshgrid(xs, ys)  # row-major over (H, s) x (W, s)
        self.sample_dirs = pixel_directions(K, np.stack([gx.ravel(), gy.ravel()], axis=1))
        px, py = np.meshgrid(np.arange(width, dtype=float), np.arange(height, dtype=float))
        self.pixel_dirs = pixel_directions(K, np.stack([px.ravel(), py.ravel()], axis=1))
        # Angle one sample subtends: footprint of a sample at distance d is ~ d * this.
        self.sample_angle = 1.0 / (K[0, 0] * supersample)
        self.light = np.array(scene.light_direction)
        self.scene = scene

    @staticmethod
    def _world_rays(
        camera_dirs: np.ndarray, cam_to_world: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Origins, unit world directions and 1/|d| (to turn ray length into z-depth)."""
        length = norm(camera_dirs)
        directions = rotate(cam_to_world[:3, :3], camera_dirs / length[:, None])
        origins = np.broadcast_to(cam_to_world[:3, 3], directions.shape).copy()
        return origins, directions, 1.0 / length

    def _shade(
        self, frame: FrameScene, hits: Hits, origins: np.ndarray, directions: np.ndarray
    ) -> np.ndarray:
        points = origins + directions * hits.distance[:, None]
        away = dot(hits.normal, directions) > 0
        normal = np.where(away[:, None], -hits.normal, hits.normal)  # face the camera
        incidence = np.abs(dot(normal, directions))
        footprint = hits.distance * self.sample_angle / np.maximum(incidence, 0.15)
        rgb = np.empty((len(points), 3))
        for index, material in enumerate(self.materials):
            rows = np.flatnonzero(hits.mesh == index)
            if len(rows) == 0:
                continue
            pose = frame.mesh_to_world[index]
            local = rotate_back(pose[:3, :3], points[rows] - pose[:3, 3])
            rgb[rows] = albedo(material, local, footprint[rows])
        cosine = dot(normal, self.light)
        shadowed = np.zeros(len(points), dtype=bool)
        lit = np.flatnonzero(cosine > 0)
        if len(lit):
            start = points[lit] + normal[lit] * _SHADOW_OFFSET
            blocker = frame.cast(start, np.broadcast_to(self.light, start.shape).copy()).mesh
            shadowed[lit] = (blocker >= 0) & (blocker != BACKDROP_ID)
        return lambert(rgb, cosine, shadowed, self.scene)

    def frame(
        self, frame: FrameScene, cam_to_world: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RGB (H, W, 3) uint8, depth (H, W) float32 and object id (H, W) uint8 of one frame."""
        h, w, s = self.height, self.width, self.s
        origins, directions, inv_norm = self._world_rays(self.sample_dirs, cam_to_world)
        hits = frame.cast(origins, directions)
        if np.any(hits.mesh < 0):
            raise RuntimeError("a camera ray escaped the backdrop; the scene is not enclosed")
        rgb = self._shade(frame, hits, origins, directions)
        rgb = rgb.reshape(h, s, w, s, 3).mean(axis=(1, 3))
        if s > 1:
            origins, directions, inv_norm = self._world_rays(self.pixel_dirs, cam_to_world)
            hits = frame.cast(origins, directions)
        depth = (hits.distance * inv_norm).reshape(h, w).astype(np.float32)
        object_id = hits.mesh.reshape(h, w).astype(np.uint8)
        return np.round(rgb * 255.0).astype(np.uint8), depth, object_id


def render_scene(
    scene: SceneSpec, split: str, num_frames: int, fps: int, width: int, height: int,
    supersample: int = 1, track_grid: int = 16,
) -> RenderedVideo:
    """Render ``scene`` for ``num_frames`` frames at ``fps`` with ground truth and grid tracks."""
    times = np.arange(num_frames, dtype=np.float64) / fps
    meshes = build_meshes(scene)
    faces = meshes.global_faces
    cam_to_world = scene.camera.cam_to_world(times)
    mesh_to_world = scene.mesh_poses(times)
    K = intrinsics(width, height, scene.camera.fov_x_deg)
    renderer = _FrameRenderer(scene, K, width, height, supersample)
    rgb = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    depth = np.empty((num_frames, height, width), dtype=np.float32)
    object_id = np.empty((num_frames, height, width), dtype=np.uint8)
    for t in range(num_frames):
        frame = FrameScene(meshes, mesh_to_world[t], faces)
        rgb[t], depth[t], object_id[t] = renderer.frame(frame, cam_to_world[t])
    no_tracks = GroundTruth(
        depth=depth,
        object_id=object_id,
        K=K,
        cam_to_world=cam_to_world,
        mesh_to_world=mesh_to_world,
        mesh_vertices=meshes.vertices,
        mesh_faces=meshes.faces,
        mesh_vertex_offsets=meshes.vertex_offsets,
        mesh_face_offsets=meshes.face_offsets,
        track_query_xy=np.zeros((0, 2), dtype=np.float32),
        track_mesh=np.zeros(0, dtype=np.int32),
        track_points_local=np.zeros((0, 3)),
        track_xy=np.zeros((num_frames, 0, 2), dtype=np.float32),
        track_visible=np.zeros((num_frames, 0), dtype=bool),
    )
    queries = grid_queries(width, height, track_grid)
    tracks = query_tracks(no_tracks, 0, queries)
    groundtruth = replace(
        no_tracks,
        track_query_xy=queries,
        track_mesh=tracks.mesh,
        track_points_local=tracks.points_local,
        track_xy=tracks.xy,
        track_visible=tracks.visible,
    )
    return RenderedVideo(scene=scene, split=split, fps=fps, rgb=rgb, groundtruth=groundtruth)


def render_video(synth: SynthConfig, split: str, index: int) -> RenderedVideo:
    """Render video ``index`` of ``split`` exactly as :func:`render_dataset` writes it."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    scene = sample_scene(
        video_seed(synth.seed, split, index),
        synth.min_objects,
        synth.max_objects,
        synth.moving_fraction,
    )
    return render_scene(
        scene, split, video_frames(synth, split), synth.fps, synth.width, synth.height,
        synth.supersample, synth.track_grid,
    )
