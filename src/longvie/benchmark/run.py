"""``longvie benchmark``: every held-out long video regenerated and scored, baselines included.

Contenders, all from the same first frame, captions and controls of each benchmark video:

* ``candidate``: the model under test (by default the newest stage-3 version in the registry);
* ``naive``: the candidate's weights generating clip by clip without history or unified noise
  (each clip sees only its conditioning frame, with fresh noise); where the profile samples
  without unified noise (``generation.unified_noise=false``, ``tiny``), the two differ by the
  history alone;
* ``static``: the first frame repeated;
* ``controls_only``: the first frame's colours carried along the stored tracks, clip by clip from
  its own last frame (:func:`controls_only_video`): what the controls give with no model;
* ``champion``: the registry's champion, when there is one and it is not the candidate.

The benchmark never touches registry aliases (that is ``longvie promote``'s job), so a crash or
a kill here cannot move one. ``reports/benchmark.json`` is written whole (renamed into place)
and carries a stamp of everything it depends on; a second run with the same inputs reuses it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from longvie.atomic import write_atomically, write_json_atomically
from longvie.benchmark.features import feature_metrics
from longvie.config import LongvieConfig
from longvie.config.schema import DepthModelConfig, ModelConfig
from longvie.controls.depth_models import load_depth_estimator
from longvie.errors import LongvieError
from longvie.generation.frame_memory import FrameMemory
from longvie.generation.plan import plan_clips
from longvie.generation.sources import stored_video
from longvie.plots import plot_series, write_frame_strip
from longvie.registry import current_champion, latest_version, model_version
from longvie.step_lock import locked_step
from longvie.tracking import flatten, mlflow_run

REPORT = "benchmark.json"
PER_CLIP_PLOT = "benchmark_per_clip.png"
# Per-clip series that start later than clip 0: the seams (entry k leads into clip k + 1).
SERIES_FIRST_CLIP = {"seam_discontinuity": 1}
FRAMES_PICTURE = "benchmark_frames.png"
# Model-based VBench dimensions this pipeline does not wire, with the reason.
UNWIRED = {
    "lpips": "needs LPIPS' pretrained AlexNet/VGG weights through torchvision, which has no CPU "
             "build here",
    "overall_consistency": "needs ViCLIP weights (not loadable through transformers)",
    "aesthetic_quality": "needs the LAION aesthetic predictor head on CLIP ViT-L/14",
    "imaging_quality": "needs MUSIQ weights (pyiqa), not installed",
}


@dataclass(frozen=True)
class Contender:
    name: str
    version: int | None  # registered version (None: a folder or a baseline without a model)
    folder: Path | None  # None: a baseline without a model (``baseline`` says which)
    history: bool = True
    # The configured sampler's unified noise (``generation.unified_noise``); False turns it off.
    unified_noise: bool = True
    baseline: str | None = None  # "static" or "controls_only"


def benchmark_sources(config: LongvieConfig, split: str = "benchmark") -> list[str]:
    """Source ids of the curated ``benchmark`` split (or another ``split``: a bench script's
    check away from the benchmark's videos), in order, limited by ``benchmark.videos``."""
    import pandas as pd

    table = Path(config.paths.curated) / "clips.parquet"
    if not table.is_file():
        raise LongvieError(f"{table} does not exist: run `longvie curate` first")
    clips = pd.read_parquet(table, columns=["source_id", "split"])
    sources = sorted(clips.loc[clips["split"] == split, "source_id"].unique())
    if not sources:
        raise LongvieError(f"{table} has no clip in the {split} split: nothing to benchmark")
    return sources[: config.benchmark.videos or None]


def contenders(config: LongvieConfig) -> tuple[list[Contender], int | None]:
    """The candidate (checked first: a bad name fails before anything runs), its baselines and
    the champion when there is a different one; and the champion alias's version now."""

    wanted = config.benchmark.candidate or _trained_stage3(config)
    if not wanted:
        newest = latest_version(config, "stage3")
        if newest is None:
            raise LongvieError("benchmark.candidate is empty and the registry holds no stage-3 "
                               "version: run `longvie train stage=3` or name a model")
        wanted = str(newest)
    version, folder = model_version(config, wanted)
    entries = [Contender("candidate", version, folder),
               Contender("naive", version, folder, history=False, unified_noise=False),
               Contender("static", None, None, baseline="static"),
               Contender("controls_only", None, None, baseline="controls_only")]
    champion = current_champion(config)
    if champion is not None and champion != version:
        entries.append(Contender("champion", *model_version(config, str(champion))))
    return entries, champion


def _trained_stage3(config: LongvieConfig) -> str:
    """The version this project's last ``train stage=3`` registered (reports/train_3.json), so
    the pipeline benchmarks what it just trained, not some newer experiment's version."""
    path = Path(config.paths.reports) / "train_3.json"
    if not path.is_file():
        return ""
    version = json.loads(path.read_text()).get("mlflow", {}).get("version")
    return "" if version is None else str(version)


def _stamp(config: LongvieConfig, entries: list[Contender], sources: list[str],
           champion: int | None) -> str:
    """Everything the report depends on: the models' files, data, settings and the code."""
    from longvie.training.trainer import data_stamp, files_stamp

    code = Path(__file__).resolve().parents[1]
    parts = {
        "models": [(e.name, e.version, files_stamp(str(e.folder)) if e.folder else None)
                   for e in entries],
        "champion": champion,
        "sources": sources,
        "data": data_stamp(config),
        "benchmark": dataclasses.asdict(config.benchmark),
        "generation": dataclasses.asdict(config.generation),
        "code": [files_stamp(str(code / part)) for part in
                 ("benchmark", "generation", "controls/splat.py", "controls/pointmap.py")],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def contender_sampler(config: LongvieConfig, entry: Contender):
    """The sampler ``entry`` generates with: the profile's, less what its switches turn off."""
    from longvie.generation.long_video import GenerationSettings

    return GenerationSettings.from_config(
        config.generation, steps=config.benchmark.steps or config.generation.steps,
        history=entry.history,
        unified_noise=entry.unified_noise and config.generation.unified_noise,
        sparse_control=config.model.sparse_control)


def sampler_seeds(config: LongvieConfig) -> list[int]:
    """The seeds every generating contender samples with: ``generation.seed`` and the next
    ``benchmark.seeds - 1``."""
    return [config.generation.seed + k for k in range(config.benchmark.seeds)]


def _frames_of(video, config: LongvieConfig) -> int:
    frames = min(config.benchmark.frames or video.num_frames, video.num_frames)
    plan_clips(frames, config.video.clip_frames)  # too short for one clip fails here
    return frames


def _depth_model(depth: DepthModelConfig, skipped: dict[str, str]):
    """The configured depth model's ``predict``; None (and a skip reason) if it cannot load."""

    try:
        return load_depth_estimator(depth).predict
    except LongvieError as error:
        skipped["depth_fidelity"] = str(error)
        return None


@locked_step("benchmark", writes=lambda c: [c.paths.reports, c.benchmark.videos_dir], tracked=True)
def run_benchmark(config: LongvieConfig, progress: bool = True, log_mlflow: bool = True,
                  tags: dict[str, str] | None = None) -> dict:
    """Generate and score every contender on every benchmark video; write the report."""
    started = time.perf_counter()
    sources = benchmark_sources(config)
    entries, champion = contenders(config)
    report_path = Path(config.paths.reports) / REPORT
    stamp = _stamp(config, entries, sources, champion)
    if report_path.is_file():
        previous = json.loads(report_path.read_text())
        if previous.get("stamp") == stamp and artifacts_intact(previous):
            return {**previous, "up_to_date": True}

    from longvie.benchmark.scoring import average_metrics

    skipped = dict(UNWIRED)
    disparity = _depth_model(config.controls.depth, skipped)
    videos = [stored_video(config, source) for source in sources]
    # Each reference is decoded once, and candidate and naive share one loaded model.
    references = {v.source_id: v.reference(0, _frames_of(v, config)) for v in videos}
    loaded: dict[Path, object] = {}
    per_video: dict[str, dict[str, dict]] = {e.name: {} for e in entries}
    outputs: dict[str, list[np.ndarray]] = {}
    seeds = sampler_seeds(config)
    per_seed: dict[str, dict[str, dict]] = {}
    for entry in entries:
        if entry.folder is not None and entry.folder not in loaded:
            loaded[entry.folder] = load_model(config.model, entry.folder)
        parts = loaded.get(entry.folder)
        runs = seeds if parts is not None else seeds[:1]  # the static video has no noise
        per_video[entry.name], per_seed[entry.name] = _score_contender(
            config, entry, parts, videos, references, runs, (disparity, skipped), outputs,
            progress)
    models = {name: average_metrics([v["metrics"] for v in by_video.values()])
              for name, by_video in per_video.items()}
    per_clip = {name: _mean_series([v["per_clip"] for v in by_video.values()])
                for name, by_video in per_video.items()}
    reports = Path(config.paths.reports)
    pictures = _pictures(config, entries, videos, references, outputs, per_clip, reports)
    report = {
        "candidate_version": entries[0].version,
        "candidate_model": str(entries[0].folder),
        # The champion alias when the benchmark started (the promotion refuses if it moved);
        # it has a row in ``models`` unless it is the candidate itself.
        "champion_version": champion,
        "models": models,
        "per_clip": per_clip,
        "per_video": {name: {source: v["metrics"] for source, v in by_video.items()}
                      for name, by_video in per_video.items()},
        "videos": {source: len(reference) for source, reference in references.items()},
        "sampler": dataclasses.asdict(contender_sampler(config, entries[0])),
        # The frame-quality figures per sampler seed (means over videos), and their spread.
        "seeds": seeds,
        "per_seed": per_seed,
        "seed_sd": {name: _spread(rows) for name, rows in per_seed.items()},
        "skipped": skipped,
        "pictures": [str(p) for p in pictures["plots"]],
        "side_by_side": [str(p) for p in pictures["videos"]],
        # What the report vouches for: a killed run may leave newer files beside an older report;
        # they are rewritten unless their digests are these.
        "artifacts": artifact_digests(pictures),
        "stamp": stamp,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if log_mlflow:
        report["mlflow_run_id"] = _log_run(config, report, pictures, tags)
    write_json_atomically(report_path, report)
    return report


def _score_contender(config: LongvieConfig, entry: Contender, parts, videos: list,
                     references: dict, runs: list[int], depth: tuple, outputs: dict,
                     progress: bool) -> tuple[dict[str, dict], dict[str, dict]]:
    """Regenerate every video with ``entry`` for each seed in ``runs`` and score it: the full
    scores of the first seed, the gate's figures of the others. Returns the per-video means
    over seeds and the per-seed means over videos; each first-seed video goes to ``outputs``.
    ``depth``: the depth model for the depth metrics and the dict of metrics skipped."""
    from longvie.benchmark.scoring import QUALITY_METRICS, average_metrics

    disparity, skipped = depth
    by_seed: dict[int, list[dict]] = {seed: [] for seed in runs}
    per_video: dict[str, dict] = {}
    for video in videos:
        reference = references[video.source_id]
        generated = regenerate(config, entry, parts, video, len(reference), runs, progress)
        scores = score(config, video, generated[0], reference, disparity)
        scores["metrics"].update(feature_metrics(config.benchmark, generated[0], skipped))
        repeats = [score(config, video, other, reference, None, quality_only=True)
                   for other in generated[1:]]
        for seed, seeded in zip(runs, [scores, *repeats], strict=True):
            by_seed[seed].append(seeded["metrics"])
        per_video[video.source_id] = seed_means(scores, repeats)
        outputs.setdefault(video.source_id, []).append(generated[0])
    per_seed = {}
    for seed, rows in by_seed.items():
        means = average_metrics(rows)
        per_seed[str(seed)] = {k: means[k] for k in QUALITY_METRICS}
    return per_video, per_seed


def artifact_digests(pictures: dict[str, list[Path]]) -> dict[str, str]:
    """md5 of every file the benchmark wrote beside its report (plots, their CSVs, videos)."""
    paths = [*pictures["plots"], *pictures["videos"]]
    paths += [p.with_suffix(".csv") for p in pictures["plots"] if p.with_suffix(".csv").is_file()]
    return {str(path): hashlib.md5(path.read_bytes()).hexdigest() for path in paths}


def artifacts_intact(report: dict) -> bool:
    """Whether every file the report vouches for is there with the bytes it recorded."""
    recorded = report.get("artifacts")
    if not recorded:
        return False
    for name, digest in recorded.items():
        path = Path(name)
        if not path.is_file() or hashlib.md5(path.read_bytes()).hexdigest() != digest:
            return False
    return True


def load_model(model: ModelConfig, folder: Path):
    from longvie.model.folder import load_generator

    return load_generator(str(folder), model, with_controller=False)


def regenerate(config: LongvieConfig, entry: Contender, parts, video, frames: int,
               seeds: list[int], progress: bool) -> list[np.ndarray]:
    """One contender's regeneration of ``video``, one per sampler seed (``parts`` None: the
    static video). The seeds' chains run as one batch."""
    from longvie.generation.long_video import generate_long_videos

    first = video.first_frame()
    if entry.baseline == "static":
        return [np.repeat(first[None], frames, axis=0)]
    if entry.baseline == "controls_only":
        return [controls_only_video(video, frames, config.video.clip_frames,
                                    config.generation.frame_memory)]
    spans = plan_clips(frames, config.video.clip_frames)
    written: list[list[np.ndarray]] = [[] for _ in seeds]
    captions = [video.caption_at(span.start) for span in spans]
    generate_long_videos(parts, first, video, captions, frames, config.video.clip_frames,
                         contender_sampler(config, entry), seeds,
                         lambda chain, frame: written[chain].append(frame),
                         config.model.condition_encoding, progress=progress)
    return [np.stack(frames_of_chain) for frames_of_chain in written]


def controls_only_video(video, frames: int, clip_frames: int,
                        frame_memory: bool = False) -> np.ndarray:
    """The controls-only baseline over a long video, clip by clip as the candidate goes: each
    clip carries its own first frame (the previous clip's last) along the clip's stored tracks
    (:func:`longvie.controls.splat.splat_first_frame`); past the stored clips the last frame
    holds. ``frame_memory``: the first frame of each clip takes warped frame 0 where the
    candidate's sparse control does (:class:`longvie.generation.frame_memory.FrameMemory`)."""
    from longvie.controls.splat import splat_first_frame
    from longvie.generation.long_video import padded_span

    written, start, memory = [], video.first_frame(), None
    for span in plan_clips(frames, clip_frames):
        if span.index < len(video.clips):
            tracks = video.tracks(span.index)
            depth, _ = padded_span(video, span)
            if frame_memory:
                memory = memory or FrameMemory(video.first_frame(), depth[0])
                start = memory.fill(start[None], depth[0])[0]
                memory.advance(tracks)
            clip = splat_first_frame(start, *tracks, depth[: len(tracks[1])])
        else:
            clip = np.repeat(start[None], clip_frames, axis=0)
        written.extend(clip[span.keep_from : span.keep_to])
        start = clip[-1]
    return np.stack(written)


def score(config: LongvieConfig, video, generated: np.ndarray, reference: np.ndarray,
          disparity, quality_only: bool = False) -> dict:
    """The scores of one regeneration; ``quality_only`` keeps to the gate's figures
    (:func:`quality_scores`)."""
    from longvie.benchmark.scoring import ClipTracks, quality_scores, score_video

    spans = plan_clips(len(reference), config.video.clip_frames)
    if quality_only:
        return quality_scores(generated, reference, spans)

    def tracks(span) -> ClipTracks | None:
        if span.index >= len(video.clips):
            return None
        return ClipTracks(*video.tracks(span.index))

    return score_video(generated, reference, spans,
                       lambda start, stop: video.span(start, stop)[0], tracks, disparity)


def generate_and_score(config: LongvieConfig, entry: Contender, parts, video,
                       reference: np.ndarray, disparity, progress: bool,
                       seed: int | None = None, quality_only: bool = False
                       ) -> tuple[np.ndarray, dict]:
    """One seed's regeneration of ``video`` and its scores (what the bench scripts compare)."""
    seed = config.generation.seed if seed is None else seed
    generated = regenerate(config, entry, parts, video, len(reference), [seed], progress)[0]
    return generated, score(config, video, generated, reference, disparity, quality_only)


def seed_means(first: dict, repeats: list[dict]) -> dict:
    """One video's scores with the gate's figures and per-clip series averaged over the first
    seed's full scores and the repeats' (quality-only) ones; the rest stays the first seed's."""
    if not repeats:
        return first
    runs = [first, *repeats]
    metrics = dict(first["metrics"])
    for name in repeats[0]["metrics"]:
        values = [r["metrics"][name] for r in runs]
        metrics[name] = None if None in values else float(np.mean(values))
    per_clip = {name: np.mean([r["per_clip"][name] for r in runs], axis=0).tolist()
                for name in first["per_clip"]}
    return {"metrics": metrics, "per_clip": per_clip}


def _spread(by_seed: dict[str, dict[str, float | None]]) -> dict[str, float | None]:
    """Sample standard deviation over seeds of each quality figure (None below two seeds)."""
    from longvie.benchmark.scoring import QUALITY_METRICS

    rows = list(by_seed.values())
    if len(rows) < 2:
        return {name: None for name in QUALITY_METRICS}
    return {name: (None if any(r[name] is None for r in rows)
                   else float(np.std([r[name] for r in rows], ddof=1)))
            for name in QUALITY_METRICS}


def _mean_series(series: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Per-clip series averaged over videos clip index by clip index (shorter videos stop)."""
    merged: dict[str, list[float]] = {}
    for name in series[0]:
        longest = max(len(s[name]) for s in series)
        merged[name] = [float(np.mean([s[name][i] for s in series if i < len(s[name])]))
                        for i in range(longest)]
    return merged


def _pictures(config: LongvieConfig, entries: list[Contender], videos, references, outputs,
              per_clip, reports: Path) -> dict[str, list[Path]]:
    """The per-clip plot, a frame strip of the first video, and side-by-side mp4s
    (reference | each contender) per video."""
    from longvie.video.io import write_video

    names = [e.name for e in entries]
    plots = [plot_series(per_clip, reports / PER_CLIP_PLOT,
                         title="benchmark: per-clip figures (mean over videos)",
                         first_clip=SERIES_FIRST_CLIP)]
    side_dir = Path(config.benchmark.videos_dir)
    side_dir.mkdir(parents=True, exist_ok=True)
    movies = []
    for index, video in enumerate(videos):
        panels = [references[video.source_id], *outputs[video.source_id]]
        if index == 0:
            plots.append(write_frame_strip(reports / FRAMES_PICTURE, ["reference", *names],
                                           panels, strip_every(len(panels[0]),
                                                               config.video.clip_frames)))
        path, movie = side_dir / f"{video.source_id}.mp4", np.concatenate(panels, axis=2)
        write_atomically(path, lambda temporary, movie=movie: write_video(
            temporary, movie, config.video.fps))
        movies.append(path)
    return {"plots": plots, "videos": movies}


def strip_every(frames: int, clip_frames: int, columns: int = 8) -> int:
    """The frame-strip's step: clip starts spread over the whole video in ``columns`` columns,
    so the picture shows the end of a long video, not only its first clips."""
    stride = clip_frames - 1
    clips = max(1, (frames - 1) // stride)
    return stride * max(1, -(-clips // columns))


def _log_run(config: LongvieConfig, report: dict, pictures: dict[str, list[Path]],
             tags: dict[str, str] | None) -> str:
    """One MLflow run: settings as params, every figure as a metric (per-clip ones by step)."""
    import mlflow

    with mlflow_run(config, "benchmark", {"longvie.step": "benchmark", **(tags or {})}) as run:
        mlflow.log_params(flatten({"benchmark": dataclasses.asdict(config.benchmark),
                                   "sampler": report["sampler"],
                                   "candidate_version": report["candidate_version"],
                                   "champion_version": report["champion_version"]}))
        for model, values in report["models"].items():
            mlflow.log_metrics({f"{model}.{k}": v for k, v in values.items() if v is not None})
        for model, spread in report["seed_sd"].items():
            mlflow.log_metrics({f"{model}.{k}_seed_sd": v for k, v in spread.items()
                                if v is not None})
        for model, series in report["per_clip"].items():
            for name, values in series.items():
                for step, value in enumerate(values, start=SERIES_FIRST_CLIP.get(name, 0)):
                    mlflow.log_metric(f"{model}.clip_{name}", value, step=step)
        for path in [*pictures["plots"], *pictures["videos"]]:
            mlflow.log_artifact(str(path), "pictures" if path.suffix == ".png" else "videos")
        mlflow.log_dict({k: v for k, v in report.items() if k != "per_video"}, "benchmark.json")
        return run.info.run_id


