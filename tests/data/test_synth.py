"""The rendered data set: determinism, geometric ground truth, encoding and the manifest rules."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import av
import numpy as np
import pytest
import trimesh

from longvie.config import compose
from longvie.synth import (
    SynthError,
    load_groundtruth,
    render_dataset,
    render_video,
    track_points,
)
from longvie.synth.dataset import MANIFEST


def _smoke(root: Path, *overrides: str):
    return compose(["profile=smoke", f"paths.root={root}", *overrides])


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[object, Path]:
    """The smoke set rendered once (in-process) for every read-only test."""
    cfg = _smoke(tmp_path_factory.mktemp("synth"))
    report = render_dataset(cfg)
    assert report["skipped"] is False
    return cfg, Path(report["out_dir"])


def _videos(out_dir: Path) -> list[Path]:
    return sorted(out_dir.glob("*/scene_*.gt.npz"))


def _world_points(gt, frame: int, mesh: np.ndarray, local: np.ndarray) -> np.ndarray:
    pose = gt.mesh_to_world[frame][mesh]
    return np.einsum("nij,nj->ni", pose[:, :3, :3], local) + pose[:, :3, 3]


def _camera_z(gt, frame: int, world: np.ndarray) -> np.ndarray:
    world_to_cam = np.linalg.inv(gt.cam_to_world[frame])
    return world @ world_to_cam[2, :3] + world_to_cam[2, 3]


def test_layout_and_report(rendered):
    cfg, out_dir = rendered
    synth = cfg.synth
    assert out_dir == Path(cfg.paths.raw) / synth.subdir
    for split, count in (("train", synth.train_videos), ("benchmark", synth.benchmark_videos)):
        stems = sorted(p.name for p in (out_dir / split).iterdir())
        suffixes = (".gt.npz", ".json", ".mp4")
        expected = [f"scene_{i:04d}{ext}" for i in range(count) for ext in suffixes]
        assert stems == sorted(expected)
    manifest = json.loads((out_dir / MANIFEST).read_text())
    assert len(manifest["files"]) == 3 * (synth.train_videos + synth.benchmark_videos)
    meta = json.loads((out_dir / "benchmark" / "scene_0000.json").read_text())
    assert meta["num_frames"] == round(synth.benchmark_seconds * synth.fps)
    assert meta["split"] == "benchmark" and "; the camera " in meta["caption"]
    assert {"shape", "colour", "pattern", "moving"} <= set(meta["objects"][0])
    assert synth.min_objects <= len(meta["objects"]) <= synth.max_objects


def test_rendering_is_deterministic_across_processes_and_seeded(rendered, tmp_path):
    _, out_dir = rendered
    again = render_dataset(_smoke(tmp_path / "again", "synth.workers=2"))
    assert again["skipped"] is False
    assert _digests(Path(again["out_dir"])) == _digests(out_dir)

    other = render_dataset(_smoke(tmp_path / "other", "synth.seed=1", "synth.benchmark_videos=0"))
    other_digests = _digests(Path(other["out_dir"]))
    first = _digests(out_dir)
    for name in ("train/scene_0000.mp4", "train/scene_0000.gt.npz"):
        assert other_digests[name] != first[name]


def test_depth_unprojects_onto_mesh_surfaces(rendered):
    _, out_dir = rendered
    gt = load_groundtruth(out_dir / "train" / "scene_0000.gt.npz")
    T, H, W = gt.depth.shape
    assert np.all(np.isfinite(gt.depth)) and gt.depth.min() > 0
    meshes = gt.meshes
    ys, xs = np.mgrid[0:H, 0:W]
    rays = np.stack([xs.ravel(), ys.ravel(), np.ones(H * W)], axis=1) @ np.linalg.inv(gt.K).T
    for frame in (0, T // 2, T - 1):
        cam = rays * gt.depth[frame].reshape(-1, 1)
        pose = gt.cam_to_world[frame]
        world = cam @ pose[:3, :3].T + pose[:3, 3]
        ids = gt.object_id[frame].ravel()
        for mesh_id in np.unique(ids):
            points = world[ids == mesh_id]
            posed = meshes.mesh(int(mesh_id))
            posed.apply_transform(gt.mesh_to_world[frame, mesh_id])
            triangles = posed.triangles
            pairs_t = np.repeat(triangles[None], len(points), axis=0).reshape(-1, 3, 3)
            pairs_p = np.repeat(points, len(triangles), axis=0)
            closest = trimesh.triangles.closest_point(pairs_t, pairs_p)
            gaps = np.linalg.norm(closest - pairs_p, axis=1)
            distance = gaps.reshape(len(points), -1).min(axis=1)
            assert distance.max() < 1e-3, (frame, mesh_id, distance.max())


def test_grid_tracks_agree_with_depth_and_motion(rendered):
    _, out_dir = rendered
    relative_errors, moving_displacement, static_displacement = [], [], []
    for npz in _videos(out_dir):
        gt = load_groundtruth(npz)
        meta = json.loads(npz.with_name(npz.name.replace(".gt.npz", ".json")).read_text())
        T, H, W = gt.depth.shape
        assert np.allclose(gt.track_xy[0], gt.track_query_xy, atol=1e-3)
        assert gt.track_visible[0].all()
        for frame in range(T):
            world = _world_points(gt, frame, gt.track_mesh, gt.track_points_local)
            z = _camera_z(gt, frame, world)
            visible = gt.track_visible[frame]
            pixel = np.rint(gt.track_xy[frame][visible]).astype(int)
            depth = gt.depth[frame][pixel[:, 1], pixel[:, 0]]
            relative_errors.append(np.abs(z[visible] - depth) / depth)
        moving_ids = {o["mesh_index"] for o in meta["objects"] if o["moving"]}
        mesh, local = gt.track_mesh, gt.track_points_local
        paths = np.stack([_world_points(gt, t, mesh, local) for t in range(T)])
        end = np.linalg.norm(paths - paths[:1], axis=2).max(axis=0)
        on_moving = np.isin(gt.track_mesh, list(moving_ids))
        moving_displacement += list(end[on_moving])
        static_displacement += list(end[~on_moving])
    errors = np.concatenate(relative_errors)
    assert len(errors) > 1000
    assert np.mean(errors < 0.05) >= 0.95
    assert len(moving_displacement) > 0 and np.mean(np.array(moving_displacement) > 0.05) >= 0.9
    assert max(static_displacement) < 1e-9


def test_occluded_tracks_are_behind_the_depth_map(rendered):
    """Points in view but not visible must be hidden by something nearer in the depth map.

    Visibility comes from ray casting, not the depth map, so this is an independent check.
    """
    _, out_dir = rendered
    behind, total = 0, 0
    for npz in _videos(out_dir):
        gt = load_groundtruth(npz)
        for frame in range(gt.num_frames):
            xy = gt.track_xy[frame]
            world = _world_points(gt, frame, gt.track_mesh, gt.track_points_local)
            z = _camera_z(gt, frame, world)
            with np.errstate(invalid="ignore"):
                inside = (z > 0) & np.all((xy > 0.5) & (xy < gt.width - 1.5), axis=1)
            hidden = inside & ~gt.track_visible[frame]
            pixel = np.rint(xy[hidden]).astype(int)
            # Nearest 3x3 pixels: a point just behind a silhouette is seen past by its own pixel.
            nearest = np.min(
                [
                    gt.depth[frame][pixel[:, 1] + dy, pixel[:, 0] + dx]
                    for dy in (-1, 0, 1)
                    for dx in (-1, 0, 1)
                ],
                axis=0,
            )
            behind += int(np.sum(nearest < z[hidden] * 0.98))
            total += int(hidden.sum())
    assert total > 0
    assert behind / total >= 0.95


def test_track_points_from_any_frame_round_trips(rendered):
    _, out_dir = rendered
    gt = load_groundtruth(out_dir / "benchmark" / "scene_0000.gt.npz")
    T = gt.num_frames
    frame = T // 2
    # Grid tracks visible at `frame`, queried back from there, must land on their grid pixels.
    keep = gt.track_visible[frame] & gt.track_visible[0]
    assert keep.sum() >= 10
    xy, visible = track_points(gt, frame, gt.track_xy[frame][keep])
    assert xy.shape == (T, int(keep.sum()), 2) and visible.shape == (T, int(keep.sum()))
    assert np.allclose(xy[frame], gt.track_xy[frame][keep], atol=1e-3)
    assert visible[frame].all()
    error = np.linalg.norm(xy[0] - gt.track_query_xy[keep], axis=1)
    assert np.mean(error < 0.05) >= 0.95
    # Requesting a few frames gives the same rows as the full tracks.
    some = [0, frame, T - 1]
    some_xy, some_visible = track_points(gt, frame, gt.track_xy[frame][keep], frames=some)
    np.testing.assert_array_equal(some_xy, xy[some])
    np.testing.assert_array_equal(some_visible, visible[some])


def test_mp4_decodes_to_the_rendered_frames(rendered):
    cfg, out_dir = rendered
    synth = cfg.synth
    video = render_video(synth, "train", 1)
    with av.open(str(out_dir / "train" / "scene_0001.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == synth.fps
        assert (stream.width, stream.height) == (synth.width, synth.height)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert len(frames) == round(synth.train_seconds * synth.fps) == video.num_frames
    mse = np.mean((frames.astype(np.float64) - video.rgb.astype(np.float64)) ** 2)
    assert 10 * np.log10(255.0**2 / mse) > 30.0
    gt = load_groundtruth(out_dir / "train" / "scene_0001.gt.npz")
    np.testing.assert_array_equal(gt.depth, video.groundtruth.depth)
    assert np.allclose(gt.K[:2, 2], [(synth.width - 1) / 2, (synth.height - 1) / 2])


def test_manifest_skip_refuse_force_and_user_files(tmp_path):
    overrides = ("synth.train_videos=1", "synth.benchmark_videos=0", "synth.train_seconds=2.0")
    cfg = _smoke(tmp_path, *overrides)
    raw = Path(cfg.paths.raw)
    user_file = raw / "mine" / "holiday.mp4"
    user_file.parent.mkdir(parents=True)
    user_file.write_bytes(b"not a synth video")
    stamp = user_file.stat().st_mtime_ns
    (raw / ".synth.partial-1" / "train").mkdir(parents=True)  # left by a killed run

    first = render_dataset(cfg)
    assert first["skipped"] is False and first["videos"] == 1 and first["frames"] == 16
    out_dir = Path(first["out_dir"])
    assert render_dataset(cfg)["skipped"] is True

    changed = _smoke(tmp_path, *overrides, "synth.seed=7")
    with pytest.raises(SynthError, match="synth.force=true") as refused:
        render_dataset(changed)
    assert str(out_dir) in str(refused.value)

    mp4 = out_dir / "train" / "scene_0000.mp4"
    before = mp4.read_bytes()
    forced = render_dataset(_smoke(tmp_path, *overrides, "synth.seed=7", "synth.force=true"))
    assert forced["skipped"] is False and mp4.read_bytes() != before
    assert render_dataset(changed)["skipped"] is True

    mp4.write_bytes(mp4.read_bytes()[:-10])
    with pytest.raises(SynthError, match="changed"):
        render_dataset(changed)

    for bad in ("..", ".", "mine/.."):
        with pytest.raises(SynthError, match="synth.subdir"):
            bad_cfg = _smoke(tmp_path, *overrides, f"synth.subdir='{bad}'", "synth.force=true")
            render_dataset(bad_cfg)

    assert user_file.read_bytes() == b"not a synth video" and user_file.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in raw.iterdir()) == ["mine", "synth"]


def test_failed_run_leaves_no_half_folder(tmp_path, monkeypatch):
    cfg = _smoke(
        tmp_path, "synth.train_videos=2", "synth.benchmark_videos=0", "synth.train_seconds=1.0"
    )
    import longvie.synth.dataset as dataset

    calls = []

    def explode(synth, split, index):
        calls.append(index)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return render_video(synth, split, index)

    monkeypatch.setattr(dataset, "render_video", explode)
    with pytest.raises(KeyboardInterrupt):
        render_dataset(cfg)
    raw = Path(cfg.paths.raw)
    assert not raw.exists() or list(raw.iterdir()) == []


def test_streamed_frames_read_the_same_arrays_in_any_order(rendered):
    """Long videos' controls read depth frame by frame; it must be the stored array exactly."""
    _, out_dir = rendered
    path = out_dir / "benchmark" / "scene_0000.gt.npz"
    loaded, streamed = load_groundtruth(path), load_groundtruth(path, stream_frames=True)
    assert streamed.depth.shape == loaded.depth.shape and streamed.num_frames == loaded.num_frames
    last = loaded.num_frames - 1
    for frame in (0, 1, 1, 7, 3, last, 0):
        assert np.array_equal(streamed.depth[frame], loaded.depth[frame])
        assert np.array_equal(streamed.object_id[frame], loaded.object_id[frame])
    with pytest.raises(IndexError):
        streamed.depth[last + 1]
