"""Long-video generation: the clip arithmetic, the unified noise, the history hand-over and the
streaming of frames, on small random-weight parts (plumbing only: no claim about quality)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from longvie.config import compose
from longvie.errors import LongvieError
from longvie.generation.long_video import GenerationSettings, generate_long_video
from longvie.generation.plan import plan_clips


@pytest.mark.parametrize("total, clips, last_written", [(17, 1, 17), (33, 2, 16), (40, 3, 7),
                                                        (49, 3, 16)])
def test_clips_overlap_by_one_frame_and_cover_every_frame_once(total, clips, last_written):
    spans = plan_clips(total, 17)
    assert len(spans) == clips
    written = [f for span in spans for f in span.written]
    assert written == list(range(total))  # every frame once, in order
    for before, after in zip(spans, spans[1:], strict=False):
        assert after.start == before.stop - 1  # the shared frame
    assert len(spans[-1].written) == last_written


def test_a_video_shorter_than_one_clip_is_refused():
    with pytest.raises(LongvieError, match="at least one clip"):
        plan_clips(9, 17)


class StripedControls:
    """A synthetic control video: depth ramps and a point map that moves one pixel a frame."""

    def __init__(self, frames: int, size: int = 32) -> None:
        self.num_frames, self.size, self.reads = frames, size, []

    def span(self, start, stop):
        self.reads.append((start, stop))
        t = np.arange(start, stop, dtype=np.float32)[:, None, None]
        x = np.arange(self.size, dtype=np.float32)[None, None, :]
        depth = np.broadcast_to((x / self.size + t / 100) % 1.0,
                                (stop - start, self.size, self.size)).astype(np.float32)
        points = np.zeros((stop - start, self.size, self.size, 3), np.uint8)
        for i, frame in enumerate(range(start, stop)):
            points[i, 8:12, frame % self.size] = 255
        return depth, points


@pytest.fixture(scope="module")
def parts():
    """Random smoke-sized generator parts (plumbing only)."""
    from longvie.model.backbone import build_transformer, build_vae
    from longvie.model.controller import DualController, LongVieTransformer
    from longvie.model.folder import Generator
    from longvie.model.text import CaptionTextEncoder, CaptionVocabulary

    config = compose(["profile=smoke"])
    torch.manual_seed(0)
    base = build_transformer(config.model)
    transformer = LongVieTransformer(base, DualController(base, 1)).eval()
    text = CaptionTextEncoder(CaptionVocabulary.build(["a red box"]), 32, 16, 1, 2).eval()
    return Generator(transformer, text, build_vae(config.model).eval(), "test", "random")


def run(parts, frames: int, settings: GenerationSettings, controls=None):
    written = []
    controls = controls or StripedControls(frames)
    first = np.full((32, 32, 3), 128, np.uint8)
    report = generate_long_video(parts, first, controls, "a red box", frames, 9, settings,
                                 written.append, progress=False)
    return np.stack(written), report, controls


def test_frames_stream_out_clip_by_clip_and_only_the_clip_is_read(parts):
    settings = GenerationSettings(steps=2, guidance=1.0)
    frames, report, controls = run(parts, 21, settings)
    assert frames.shape == (21, 32, 32, 3) and frames.dtype == np.uint8
    assert report["clips"] == 3 and len(report["seconds_per_clip"]) == 3
    assert controls.reads == [(0, 9), (8, 17), (16, 21)]  # the last clip padded, never past


def test_generation_is_repeatable_and_the_noise_is_shared_across_clips(parts, monkeypatch):
    import longvie.generation.long_video as module

    starts = []
    real = module.sample_clip

    def spy(transformer, inputs, start_noise, *args):
        starts.append((start_noise.clone(), inputs.history))
        return real(transformer, inputs, start_noise, *args)

    monkeypatch.setattr(module, "sample_clip", spy)
    settings = GenerationSettings(steps=2, guidance=2.0, history_frames=4)
    first, _, _ = run(parts, 17, settings)
    (noise0, history0), (noise1, history1) = starts
    assert history0 is None and history1.shape[2] == 1  # 4 frames = one latent
    # Unified noise: later clips reuse the sample; latent frame 0 is blended with z_H[-1].
    assert torch.equal(noise0[:, :, 1:], noise1[:, :, 1:])
    expected = 0.074 * history1[:, :, -1] + 0.926 * noise0[:, :, 0]
    assert torch.allclose(noise1[:, :, 0], expected)
    starts.clear()
    again, _, _ = run(parts, 17, settings)
    assert np.array_equal(first, again)

    starts.clear()
    run(parts, 17, GenerationSettings(steps=2, guidance=2.0, history=False, unified_noise=False))
    (noise0, history0), (noise1, history1) = starts
    assert history0 is None and history1 is None and not torch.equal(noise0, noise1)


@pytest.mark.parametrize("unified_noise", [True, False])
def test_seeds_sampled_as_one_batch_give_what_each_seed_gives_alone(parts, unified_noise):
    """The benchmark samples its seeds as one batch; each chain must be that seed's video."""
    from longvie.generation.long_video import generate_long_videos

    settings = GenerationSettings(steps=3, guidance=2.0, history_frames=4,
                                  unified_noise=unified_noise, history=unified_noise)
    alone = [run(parts, 25, dataclasses.replace(settings, seed=seed))[0] for seed in (3, 4)]
    written = [[], []]
    first = np.full((32, 32, 3), 128, np.uint8)
    report = generate_long_videos(parts, first, StripedControls(25), "a red box", 25, 9,
                                  settings, [3, 4], lambda k, f: written[k].append(f),
                                  progress=False)
    assert report["chains"] == 2 and report["clips"] == 3
    for single, chain in zip(alone, written, strict=True):
        difference = np.abs(single.astype(int) - np.stack(chain).astype(int))
        assert difference.max() <= 1 and difference.mean() < 0.01  # uint8 rounding at most
    assert not np.array_equal(alone[0], alone[1])


# --- the command: inputs checked before any model is loaded ----------------------------------


@pytest.fixture
def project(curated, tmp_path):
    """The smoke data plus a random-weight stage folder (models/random/model) to generate with."""
    from tests.helpers.project import copy_project, random_stage3

    root = copy_project(curated, tmp_path / "project")
    random_stage3(root, compose(["profile=smoke", f"paths.root={root}"]), "random", seed=0)
    return root


def benchmark_source(root) -> str:
    import pandas as pd

    clips = pd.read_parquet(root / "data" / "curated" / "clips.parquet")
    return clips[clips["split"] == "benchmark"]["source_id"].iloc[0]


def test_generate_writes_the_whole_video_from_a_curated_source(project):
    from longvie.generation.run import generate
    from longvie.video.io import read_video

    source = benchmark_source(project)
    out = project / "out" / "video.mp4"
    config = compose(["profile=smoke", f"paths.root={project}", f"generation.source={source}",
                      f"generation.model={project / 'models' / 'random' / 'model'}",
                      f"generation.output={out}", "generation.steps=2"])
    from longvie.generation.sources import stored_video

    report = generate(config, progress=False)
    frames, fps = read_video(out)
    expected = stored_video(config, source).num_frames  # the whole curated shot
    assert len(frames) == report["frames"] == expected and report["clips"] >= 4
    assert fps == 8 and frames.shape[1:] == (32, 32, 3)
    assert not list(out.parent.glob(".*partial*"))


@pytest.mark.parametrize("overrides, message", [
    (["generation.source=nope"], "source 'nope' is not in"),
    (["generation.frames=500"], "the controls have only"),
    (["generation.frames=5"], "at least one clip"),
    (["generation.model=challenger"], "no such alias"),
    (["generation.model=42"], "no such version"),
    (["generation.first_frame=/nonexistent.png"], "no such file"),
    (["generation.depth_video=/x.mp4"], "not both"),
])
def test_bad_input_fails_with_its_reason_before_any_model_is_loaded(project, overrides, message,
                                                                     monkeypatch):
    import longvie.model.folder as folder
    from longvie.generation.run import generate

    def forbidden(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(folder, "load_generator", forbidden)
    source = benchmark_source(project)
    config = compose(["profile=smoke", f"paths.root={project}", f"generation.source={source}",
                      *overrides])
    with pytest.raises(LongvieError, match=message):
        generate(config, progress=False)


def test_a_first_frame_of_another_size_is_refused(project):
    from PIL import Image

    from longvie.generation.run import generate

    image = project / "big.png"
    Image.new("RGB", (48, 32)).save(image)
    config = compose(["profile=smoke", f"paths.root={project}",
                      f"generation.source={benchmark_source(project)}",
                      f"generation.first_frame={image}"])
    with pytest.raises(LongvieError, match="48x32 but the controls are 32x32"):
        generate(config, progress=False)


def test_control_videos_are_normalised_over_the_whole_video_and_must_align(tmp_path):
    from longvie.generation.files import FileControls
    from longvie.video.io import write_video

    ramp = np.linspace(40, 200, 20).astype(np.uint8)  # the depth video brightens over time
    depth = np.repeat(ramp[:, None, None, None], 32, 1).repeat(32, 2).repeat(3, 3)
    points = np.zeros((20, 32, 32, 3), np.uint8)
    write_video(tmp_path / "depth.mp4", depth, 8)
    write_video(tmp_path / "points.mp4", points, 8)
    controls = FileControls(tmp_path / "depth.mp4", tmp_path / "points.mp4")
    assert controls.num_frames == 20
    early, _ = controls.span(0, 9)
    late, late_points = controls.span(8, 20)  # spans go forward, sharing one frame
    assert late_points.shape == (12, 32, 32, 3)
    # Global p5/p95: the first frames sit at 0, the last at 1, not each span stretched alone.
    assert float(early[0].mean()) < 0.05 and float(late[-1].mean()) > 0.95
    assert np.array_equal(early[-1], late[0])
    write_video(tmp_path / "short.mp4", points[:10], 8)
    with pytest.raises(LongvieError, match="frame-aligned"):
        FileControls(tmp_path / "depth.mp4", tmp_path / "short.mp4")


@pytest.mark.parametrize("bad", ["depth", "points"])
def test_a_control_video_that_is_no_video_is_refused_naming_its_key_and_file(tmp_path, bad):
    from longvie.generation.files import FileControls
    from longvie.video.io import write_video

    write_video(tmp_path / "depth.mp4", np.zeros((9, 32, 32, 3), np.uint8), 8)
    write_video(tmp_path / "points.mp4", np.zeros((9, 32, 32, 3), np.uint8), 8)
    (tmp_path / f"{bad}.mp4").write_text("a text file, not a video\n" * 20)
    key = {"depth": "generation.depth_video", "points": "generation.point_map_video"}[bad]
    with pytest.raises(LongvieError, match=rf"{key}: .*{bad}\.mp4 is not a readable video"):
        FileControls(tmp_path / "depth.mp4", tmp_path / "points.mp4")


class TrackedControls(StripedControls):
    """Striped controls that also keep their tracks: one point moving right a pixel a frame."""

    def span_tracks(self, start, stop):
        query = np.array([[float(start % self.size), 10.0]], dtype=np.float32)
        xy = np.stack([[[float(f % self.size), 10.0]] for f in range(start, stop)])
        return query, xy.astype(np.float32), np.ones((stop - start, 1), dtype=bool)


def test_first_frame_controls_carry_each_chains_own_conditioning_frame(parts, monkeypatch):
    """``first_frame`` colouring: clip 1 splats the given first frame, every later clip the
    frame that chain generated last, along that clip's tracks."""
    import longvie.generation.long_video as module
    from longvie.generation.long_video import generate_long_videos

    seen = []
    real = module.first_frame_controls

    def spy(codec, frames, depth, tracks):
        seen.append((frames.copy(), tracks))
        return real(codec, frames, depth, tracks)

    monkeypatch.setattr(module, "first_frame_controls", spy)
    settings = GenerationSettings(steps=2, guidance=1.0, sparse_control="first_frame")
    first = np.full((32, 32, 3), 128, np.uint8)
    written = [[], []]
    generate_long_videos(parts, first, TrackedControls(17), "a red box", 17, 9, settings, [0, 1],
                         lambda k, f: written[k].append(f), progress=False)
    assert len(seen) == 2
    (frames0, tracks0), (frames1, tracks1) = seen
    assert frames0.shape == (2, 32, 32, 3) and (frames0 == 128).all()
    for chain in (0, 1):
        assert np.array_equal(frames1[chain], written[chain][8])  # the clip's shared frame
    assert not np.array_equal(frames1[0], frames1[1])
    assert tracks0[0].tolist() == [[0.0, 10.0]] and tracks1[0].tolist() == [[8.0, 10.0]]


def test_without_stored_tracks_they_are_read_back_from_the_point_map(parts, monkeypatch):
    import longvie.generation.long_video as module

    seen = []
    real = module.first_frame_controls
    monkeypatch.setattr(module, "first_frame_controls",
                        lambda codec, frames, depth, tracks: seen.append(tracks)
                        or real(codec, frames, depth, tracks))
    controls = StripedControls(9)
    controls.span_tracks = lambda start, stop: None
    run(parts, 9, GenerationSettings(steps=1, guidance=1.0, sparse_control="first_frame"),
        controls)
    query, xy, visible = seen[0]
    # the striped point map draws one 4x1 dot at x = frame, rows 8-11
    assert query.tolist() == [[0.0, 9.5]]
    assert xy[:, 0, 0].tolist() == list(map(float, range(9))) and visible.all()


def test_the_colour_anchor_gives_each_frame_the_first_frames_colour_statistics():
    from longvie.generation.long_video import anchor_colours

    rng = np.random.default_rng(0)
    first = rng.integers(40, 200, (16, 16, 3)).astype(np.uint8)
    # A drifted frame: its own pattern, green and blue lifted, contrast halved.
    drifted = (first.astype(np.float32) * 0.5 + np.array([0, 60, 90])).clip(0, 255)
    anchored = anchor_colours(drifted[None].astype(np.uint8), first)[0].astype(np.float32)
    reference = first.reshape(-1, 3).astype(np.float32)
    assert np.allclose(anchored.reshape(-1, 3).mean(0), reference.mean(0), atol=0.6)
    assert np.allclose(anchored.reshape(-1, 3).std(0), reference.std(0), atol=0.6)
    assert np.abs(anchored - first).max() <= 2  # here the drift was affine: undone exactly
    assert np.array_equal(anchor_colours(first[None], first)[0], first)


def test_with_the_colour_anchor_each_later_clip_starts_from_the_anchored_frame(parts,
                                                                                monkeypatch):
    import longvie.generation.long_video as module
    from longvie.generation.long_video import anchor_colours, generate_long_videos

    seen = []
    real = module.first_frame_controls

    def spy(codec, frames, depth, tracks):
        seen.append(frames.copy())
        return real(codec, frames, depth, tracks)

    monkeypatch.setattr(module, "first_frame_controls", spy)
    first = np.random.default_rng(1).integers(0, 255, (32, 32, 3)).astype(np.uint8)
    for anchor in (False, True):
        seen.clear()
        written = [[]]
        settings = GenerationSettings(steps=2, guidance=1.0, sparse_control="first_frame",
                                      colour_anchor=anchor)
        generate_long_videos(parts, first, TrackedControls(17), "a red box", 17, 9, settings,
                             [0], lambda k, f: written[k].append(f), progress=False)
        shared = written[0][8]  # the last frame of clip 1, the first of clip 2
        expected = anchor_colours(shared[None], first)[0] if anchor else shared
        assert np.array_equal(seen[1][0], expected)
    assert not np.array_equal(anchor_colours(shared[None], first)[0], shared)
