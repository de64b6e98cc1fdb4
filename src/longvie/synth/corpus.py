"""The pretraining corpus (``longvie pretrain``): many short rendered scenes of extended variety.

Production fine-tunes a base pretrained elsewhere on millions of videos; the tiny base is
pretrained here, on this corpus. It is rendered by the same scene sampler and renderer as
``data/raw`` but with the ``pretrain`` split code (seeds disjoint from the pipeline's train and
benchmark scenes), the extended variety (more shapes, patterns, colours, a hopping motion, a crane
camera, random light strength and colour) and no ground-truth sidecars (the base needs frames and
captions only). Like ``render_dataset`` it renders into a hidden sibling and renames it into
place, and a rerun with the same settings and intact files does nothing.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from longvie.atomic import replace_directory
from longvie.config.schema import CorpusConfig, SynthConfig
from longvie.synth.dataset import MANIFEST, SynthError, _check_existing, _md5
from longvie.synth.render import render_scene
from longvie.synth.scene import sample_scene, video_seed
from longvie.synth.writer import write_metadata
from longvie.video.io import write_video as write_mp4

SPLIT = "pretrain"
CORPUS_FORMAT = "longvie-pretrain-corpus/2"  # 2: the CPU-independent ray caster


def corpus_frames(corpus: CorpusConfig, fps: int) -> int:
    return round(corpus.seconds * fps)


def corpus_fingerprint(synth: SynthConfig, corpus: CorpusConfig) -> str:
    """sha256 of everything that changes the corpus bytes."""
    look = {k: getattr(synth, k) for k in ("seed", "fps", "width", "height", "supersample", "crf")}
    text = json.dumps({"format": CORPUS_FORMAT, "synth": look, "corpus": asdict(corpus)},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def render_corpus_video(synth: SynthConfig, corpus: CorpusConfig, index: int):
    """Video ``index`` of the corpus (a RenderedVideo), exactly as :func:`render_corpus` writes."""
    scene = sample_scene(video_seed(synth.seed, SPLIT, index), corpus.min_objects,
                         corpus.max_objects, corpus.moving_fraction, corpus.variety)
    return render_scene(scene, SPLIT, corpus_frames(corpus, synth.fps), synth.fps, synth.width,
                        synth.height, synth.supersample, track_grid=1)


def _render_one(synth: SynthConfig, corpus: CorpusConfig, index: int, folder: str) -> list[str]:
    video = render_corpus_video(synth, corpus, index)
    stem = f"scene_{index:05d}"
    write_mp4(Path(folder) / f"{stem}.mp4", video.rgb, video.fps, synth.crf)
    write_metadata(Path(folder) / f"{stem}.json", video.metadata())
    return [f"{stem}.mp4", f"{stem}.json"]


def corpus_folder(root: str) -> Path:
    return Path(root) / "synth"


def render_corpus(synth: SynthConfig, corpus: CorpusConfig, root: str,
                  progress: bool = True) -> dict:
    """Render (or verify and reuse) the corpus under ``root/synth``; returns a small report."""
    started = time.perf_counter()
    out_dir = corpus_folder(root)
    expected = corpus_fingerprint(synth, corpus)
    frames = corpus.videos * corpus_frames(corpus, synth.fps)
    report = {"videos": corpus.videos, "frames": frames, "out_dir": str(out_dir)}
    if out_dir.exists() and any(out_dir.iterdir()):
        problem = _check_existing(out_dir, expected)
        if problem is None:
            return {**report, "seconds": round(time.perf_counter() - started, 2), "skipped": True}
        if not corpus.force:
            raise SynthError(f"{out_dir} already exists but does not hold this corpus ({problem});"
                             " pass pretrain.corpus.force=true to render it again")
    partial = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    files: list[str] = []
    try:
        bar = tqdm(total=corpus.videos, desc="pretrain corpus", unit="video",
                   disable=not progress)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, synth.workers), mp_context=context) as pool:
            for written in pool.map(_render_one, [synth] * corpus.videos,
                                    [corpus] * corpus.videos, range(corpus.videos),
                                    [str(partial)] * corpus.videos, chunksize=4):
                files += written
                bar.update()
        bar.close()
        manifest = {
            "fingerprint": expected, "format": CORPUS_FORMAT, "corpus": asdict(corpus),
            "videos": corpus.videos, "frames": frames,
            "files": [{"path": name, "md5": _md5(partial / name),
                       "size": (partial / name).stat().st_size} for name in sorted(files)],
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    replace_directory(partial, out_dir)
    return {**report, "seconds": round(time.perf_counter() - started, 2), "skipped": False}
