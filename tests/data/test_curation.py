"""Curation: every raw file is either curated into valid clips or rejected with its reason."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from longvie.curation import CurationError, curate
from longvie.curation.frames import NearestTimeResampler, crop_box
from longvie.video.io import VideoReadError, iter_frames, presentation_order, read_video
from tests.helpers.project import OPENCV_BOX_MP4
from tests.helpers.videos import moving_texture, write, write_in_decode_order

# Smoke profile: clips of 9 frames at 8 fps, 32x32; a good test video is 96x64 at 12 fps, 3 s.
GOOD = dict(frames=36, height=64, width=96)


def good_video(path: Path, seed: int, fps: float = 12) -> Path:
    return write(path, moving_texture(GOOD["frames"], GOOD["height"], GOOD["width"], seed), fps)


def build_bad_corpus(raw: Path) -> dict[str, str]:
    """Write one file per failure kind; returns file -> expected reason category."""
    good = good_video(raw / "good.mp4", seed=1)
    expected = {}

    (raw / "empty.mp4").write_bytes(b"")
    expected["empty.mp4"] = "empty file"

    (raw / "text.mp4").write_text("this is a text file, not a video\n" * 20)
    expected["text.mp4"] = "not a readable video"

    ok, png = cv2.imencode(".png", moving_texture(1, 64, 96)[0])
    (raw / "photo.mp4").write_bytes(png.tobytes())
    expected["photo.mp4"] = "still image"

    corrupt = bytearray(good.read_bytes())
    corrupt[: len(corrupt) // 2] = np.random.default_rng(0).bytes(len(corrupt) // 2)
    (raw / "corrupt.mp4").write_bytes(bytes(corrupt))
    expected["corrupt.mp4"] = "not a readable video"

    (raw / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 5])
    expected["truncated.mp4"] = "not a readable video"  # the index (moov) is at the end: gone

    source = write(Path(tempfile.mkdtemp()) / "long.mkv", moving_texture(240, 64, 96, seed=2))
    (raw / "truncated.mkv").write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    expected["truncated.mkv"] = "truncated"  # header promises a duration the data do not reach

    write(raw / "single.mp4", moving_texture(1, 64, 96, seed=3))
    expected["single.mp4"] = "single frame"

    write(raw / "wide.mp4", moving_texture(36, 32, 384, seed=4))
    expected["wide.mp4"] = "extreme aspect ratio"

    write(raw / "tiny.mp4", moving_texture(36, 16, 16, seed=5))
    expected["tiny.mp4"] = "too small"

    grey = moving_texture(36, 64, 96, seed=6).mean(axis=3, keepdims=True).astype(np.uint8)
    write(raw / "grey.mp4", np.repeat(grey, 3, axis=3))
    expected["grey.mp4"] = "greyscale"

    times = np.cumsum(np.where(np.arange(36) % 2, 0.04, 0.12)).tolist()
    write(raw / "vfr.mp4", moving_texture(36, 64, 96, seed=7), times=times)
    expected["vfr.mp4"] = "variable frame rate"

    (raw / "notes.docx").write_bytes(b"PK\x03\x04 not a video")
    expected["notes.docx"] = "unsupported extension '.docx'"
    return expected


def snapshot(folder: Path) -> dict[str, tuple[str, float]]:
    return {
        p.relative_to(folder).as_posix(): (hashlib.md5(p.read_bytes()).hexdigest(), p.stat().st_mtime)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def rejected_by_path(config) -> dict[str, list[str]]:
    table = pd.read_parquet(Path(config.paths.curated) / "rejected.parquet")
    reasons: dict[str, list[str]] = {}
    for row in table.itertuples():
        reasons.setdefault(row.path, []).append(row.reason)
    return reasons


def test_bad_files_are_rejected_with_reasons_and_good_files_still_curated(smoke_config):
    config = smoke_config()
    raw = Path(config.paths.raw)
    expected = build_bad_corpus(raw)
    good_video(raw / "other" / "good2.mkv", seed=11)
    good_video(raw / "other" / "good3.webm", seed=12)
    good_video(raw / "other" / "good4.avi", seed=13)
    before = snapshot(raw)

    report = curate(config, progress=False)

    reasons = rejected_by_path(config)
    for name, category in expected.items():
        assert name in reasons, f"{name} was not rejected"
        assert any(r.startswith(category) for r in reasons[name]), (name, reasons[name])
    clips = pd.read_parquet(Path(config.paths.curated) / "clips.parquet")
    curated_sources = set(clips["source_path"])
    assert curated_sources == {"good.mp4", "other/good2.mkv", "other/good3.webm", "other/good4.avi"}
    assert report["videos_curated"] == 4
    assert snapshot(raw) == before, "curation modified data/raw"
    listed = {(r["path"], r["reason"]) for r in report["rejected"]}
    assert all(any(p == name for p, _ in listed) for name in expected)


def curated_one_video(config) -> tuple[Path, Path, bytes]:
    """A good curation of one video: the raw folder, the clip table and its bytes."""
    raw = Path(config.paths.raw)
    good_video(raw / "good.mp4", seed=41)
    curate(config, progress=False)
    table = Path(config.paths.curated) / "clips.parquet"
    return raw, table, table.read_bytes()


def test_a_curation_that_rejects_every_file_says_so_with_each_reason(smoke_config):
    config = smoke_config()
    raw, table, before = curated_one_video(config)
    (raw / "good.mp4").unlink()
    (raw / "text.mp4").write_text("this is a text file, not a video\n" * 20)
    (raw / "empty.mkv").write_bytes(b"")

    with pytest.raises(CurationError) as refused:
        curate(config, progress=False)

    message = str(refused.value)
    assert message.startswith(f"every video in {raw} was rejected (2 videos")
    assert "text.mp4: not a readable video" in message and "empty.mkv: empty file" in message
    assert "validation" not in message.lower() and "expect" not in message
    assert table.read_bytes() == before  # the last good curation stays
    assert not Path(config.paths.curated).with_name("curated.staging").exists()


def test_clips_have_the_profile_shape_and_map_back_to_their_source(smoke_config):
    config = smoke_config()
    raw = Path(config.paths.raw)
    # Two different scenes joined by a hard cut: shot detection must split them.
    joined = np.concatenate([moving_texture(48, 64, 96, seed=21), moving_texture(48, 64, 96, seed=22)])
    write(raw / "two_shots.mp4", joined, fps=12)

    curate(config, progress=False)

    clips = pd.read_parquet(Path(config.paths.curated) / "clips.parquet")
    assert sorted(clips["segment_index"].unique()) == [0, 1]
    video = config.video
    for row in clips.itertuples():
        frames, fps = read_video(Path(config.paths.curated) / row.path)
        assert frames.shape == (video.clip_frames, video.height, video.width, 3)
        assert fps == video.fps
    stride = video.clip_frames - config.curation.clip_overlap
    for _, segment in clips.groupby("segment_index"):
        segment = segment.sort_values("clip_index")
        assert (segment["frame_start"].diff().dropna() == stride).all()
        assert (segment["frame_end"] - segment["frame_start"] == video.clip_frames).all()
    second = clips[clips.segment_index == 1].iloc[0]
    assert 3.9 <= second.start_seconds <= 4.2, "segment 1 should start at the cut (4 s)"


def test_consecutive_clips_share_the_overlap_frame(smoke_config):
    config = smoke_config()
    good_video(Path(config.paths.raw) / "a.mp4", seed=3)
    curate(config, progress=False)
    clips = pd.read_parquet(Path(config.paths.curated) / "clips.parquet").sort_values("clip_index")
    first, second = (read_video(Path(config.paths.curated) / p)[0] for p in clips["path"][:2])
    def distance(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(int) - b.astype(int)).mean())

    # The shared frame, encoded twice, is far closer than the neighbouring frame is.
    assert distance(first[-1], second[0]) < distance(first[-2], second[0]) / 2


def test_static_blurred_and_duplicate_segments_are_dropped(smoke_config):
    config = smoke_config()
    raw = Path(config.paths.raw)
    good_video(raw / "original.mp4", seed=31)
    shutil.copy(raw / "original.mp4", raw / "original_copy.mp4")  # sorts after the original
    still = np.repeat(moving_texture(1, 64, 96, seed=32), 36, axis=0)
    write(raw / "static.mp4", still)
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 8) for f in moving_texture(36, 64, 96, seed=33)])
    write(raw / "blurred.mp4", blurred)

    report = curate(config, progress=False)

    reasons = rejected_by_path(config)
    assert reasons["original_copy.mp4"][0].startswith("near-duplicate: of original.mp4")
    assert reasons["static.mp4"][0].startswith("static")
    assert reasons["blurred.mp4"][0].startswith("blurred")
    assert report["videos_curated"] == 1
    assert report["reasons_histogram"] == {"near-duplicate": 1, "static": 1, "blurred": 1}


def test_real_videos_from_opencv_doc(smoke_config, opencv_samples):
    """Footage no one here made: a street scene, a film trailer with cuts, a truncated file."""
    config = smoke_config("video.width=64", "video.height=64", "video.clip_frames=17")
    raw = Path(config.paths.raw)
    raw.mkdir(parents=True)
    for name in ("vtest.avi", "Megamind.avi", "tree.avi"):
        shutil.copy(opencv_samples / name, raw / name)
    # An MP4 whose decoder returns frames in decode order (once rejected as "bad timestamps").
    with gzip.open(OPENCV_BOX_MP4) as packed, (raw / "box.mp4").open("wb") as unpacked:
        shutil.copyfileobj(packed, unpacked)

    report = curate(config, progress=False)

    clips = pd.read_parquet(Path(config.paths.curated) / "clips.parquet")
    per_source = clips.groupby("source_path")
    assert per_source.size()["box.mp4"] >= 6  # 15.2 s at 8 fps: 121 frames, 7 clips of 17
    assert per_source.size()["vtest.avi"] >= 30  # 79.5 s at 8 fps, clips of 17 with stride 16
    assert clips.loc[clips.source_path == "Megamind.avi", "segment_index"].nunique() >= 2
    assert rejected_by_path(config)["tree.avi"] == ["truncated: decoded 68 of 444 declared frames"]
    vtest = clips[clips.source_path == "vtest.avi"].iloc[0]
    assert (vtest.source_width, vtest.source_height, vtest.source_fps) == (768, 576, 10.0)
    assert (vtest.crop_x, vtest.crop_y) == (10, 0)  # 768x576 -> 85x64, centre 64 columns
    assert report["seconds"] > 0
    assert json.loads((Path(config.paths.reports) / "curation.json").read_text())["clips"] == len(clips)


def test_a_video_whose_decoder_returns_frames_out_of_order_is_curated_in_presentation_order(
    smoke_config,
):
    """B-frames in a stream that declares no reorder delay: the decoder hands frames out in
    decode order (0, 2, 1, 3, ...); they are shown, and must be curated, in time order."""
    config = smoke_config()
    raw = Path(config.paths.raw)
    frames = moving_texture(48, 72, 96, seed=5, speed=3)
    order = [i for group in range(0, 48, 4) for i in (group, group + 2, group + 1, group + 3)]
    path = write_in_decode_order(raw / "reordered.mp4", frames, fps=12, order=order)

    decoded = list(iter_frames(path))

    times = [seconds for seconds, _ in decoded]
    assert times == sorted(times) and len(times) == 48
    # Each decoded picture is closest to the original frame of its own position.
    nearest = [int(np.argmin([np.abs(rgb.astype(int) - f).mean() for f in frames]))
               for _, rgb in decoded]
    assert nearest == list(range(48))
    report = curate(config, progress=False)
    assert report["videos_curated"] == 1, report["rejected"]


def test_presentation_times_that_are_no_consistent_set_are_rejected_with_the_reason():
    in_window = [(t, f"frame {t}") for t in (0.0, 0.2, 0.1, 0.3)]
    assert [t for t, _ in presentation_order(in_window)] == [0.0, 0.1, 0.2, 0.3]
    with pytest.raises(VideoReadError, match="two frames share the presentation time 0.100 s"):
        list(presentation_order([(0.0, 0), (0.1, 1), (0.1, 2), (0.2, 3)]))
    late = [(0.1 * t, t) for t in range(1, 20)] + [(0.0, 0)]
    with pytest.raises(VideoReadError, match="out of order beyond any decoder's reorder delay"):
        list(presentation_order(late, window=16))


def test_hidden_folders_such_as_a_render_in_progress_are_not_curated(smoke_config):
    config = smoke_config()
    raw = Path(config.paths.raw)
    good_video(raw / "done.mp4", seed=61)
    good_video(raw / ".synth.partial-123" / "train" / "scene_0000.mp4", seed=62)
    report = curate(config, progress=False)
    assert report["videos_in"] == 1 and report["rejected"] == []


def test_clip_encoding_is_byte_reproducible(tmp_path):
    from longvie.video.io import write_video

    frames = moving_texture(17, 32, 32, seed=71)
    first, second = tmp_path / "a.mp4", tmp_path / "b.mp4"
    write_video(first, frames, fps=8, crf=10)
    write_video(second, frames, fps=8, crf=10)
    assert first.read_bytes() == second.read_bytes()


def test_missing_or_empty_raw_folder_is_one_clear_error(smoke_config):
    config = smoke_config()
    with pytest.raises(CurationError, match=r"raw folder .*data/raw does not exist"):
        curate(config, progress=False)
    Path(config.paths.raw).mkdir(parents=True)
    with pytest.raises(CurationError, match=r"raw folder .*holds no files"):
        curate(config, progress=False)


def test_a_failed_validation_fails_the_step_and_keeps_the_previous_output(smoke_config,
                                                                          monkeypatch):
    from longvie.curation import run

    config = smoke_config()
    raw, table, before = curated_one_video(config)
    good_video(raw / "good2.mp4", seed=42)
    clip_table = run._clip_table  # a clipper bug: every clip listed twice
    monkeypatch.setattr(run, "_clip_table", lambda results: pd.concat([clip_table(results)] * 2))

    with pytest.raises(CurationError, match="expect_column_values_to_be_unique"):
        curate(config, progress=False)
    assert table.read_bytes() == before


def test_unreadable_file_is_rejected_as_permission_denied(smoke_config):
    """As root every file is readable, so the check runs in a child that drops to `nobody`."""
    from longvie.curation.process import curate_source
    from longvie.curation.sources import discover

    config = smoke_config()
    shared = Path(tempfile.mkdtemp(prefix="longvie-perm-"))
    os.chmod(shared, 0o777)
    locked = good_video(shared / "locked.mp4", seed=51)
    os.chmod(locked, 0)
    [source], _ = discover(shared, config.curation)
    if os.geteuid() != 0:
        result = curate_source(source, config.video, config.curation, shared / "out")
        assert result.reason == "unreadable: permission denied (Permission denied)"
        return
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        os.setgid(65534)
        os.setuid(65534)
        result = curate_source(source, config.video, config.curation, shared / "out")
        os.write(write_end, (result.reason or "").encode())
        os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(child, 0)
    reason = os.read(read_end, 4096).decode()
    assert status == 0
    assert reason == "unreadable: permission denied (Permission denied)"
    shutil.rmtree(shared)


def test_resampling_follows_time_and_keeps_identity_rates():
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(30)]

    def resample(source_fps: float, target_fps: float) -> list[int]:
        resampler = NearestTimeResampler(target_fps)
        out = []
        for i, f in enumerate(frames):
            out += [s for _, s, _ in resampler.push(i / source_fps, i, f)]
        out += [s for _, s, _ in resampler.finish(1 / source_fps)]
        return out

    assert resample(8, 8) == list(range(30))
    assert resample(24, 8) == list(range(0, 30, 3))
    # Upsampling: a tie goes to the later frame, and the last frame covers half an interval.
    assert resample(4, 8) == [(k + 1) // 2 for k in range(59)]


def test_crop_box_covers_the_target_and_centres_it():
    box = crop_box(768, 576, 64, 64)
    assert box.x == 10 and box.y == 0
    box = crop_box(640, 352, 640, 352)
    assert (box.scale, box.x, box.y) == (1.0, 0, 0)
