"""What a served clip costs: a registered version loaded through MLflow's pyfunc and called.

Builds a request from a curated benchmark source as a client would send it (its first frame as
PNG, its depth and point-map controls as mp4, base64 inline), loads ``--model`` with
``mlflow.pyfunc.load_model`` from the configured tracking store, and times ``predict`` for
``--clips`` clips (16 new frames each), twice: the first call includes the lazy start-up, the
second is the steady cost. Prints seconds per clip. All figures come from this one run.

    .venv/bin/python bench/serving_cost.py [--model=models:/longvie@champion] [--clips=2]
        [--out=JSON] [hydra overrides ...]
"""

from __future__ import annotations

import base64
import io
import json
import sys
import time
from pathlib import Path

from script_options import take_option

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "serving_cost.json"


def encoded_mp4(frames, fps: int, folder: Path, name: str) -> str:
    from longvie.video.io import write_video

    path = folder / name
    write_video(path, frames, fps)
    return base64.b64encode(path.read_bytes()).decode("ascii")


def main(args: list[str]) -> int:
    import tempfile

    import mlflow
    import numpy as np
    from PIL import Image

    from longvie.config import compose
    from longvie.training.clips import clip_records, read_clip
    from longvie.tracking import tracking_uri

    model_uri, args = take_option(args, "model", "models:/longvie@champion")
    clips, args = take_option(args, "clips", "2")
    out, args = take_option(args, "out", str(RESULTS))
    clips = int(clips)
    config = compose(args)
    records = clip_records(config, ("benchmark",), with_controls=True)
    source = records[0].source_id
    chosen = [r for r in records if r.source_id == source][:clips]
    parts = [read_clip(r) for r in chosen]
    # Consecutive clips share one frame: keep it once.
    depth = np.concatenate([p["dense"][1 if i else 0:] for i, p in enumerate(parts)])
    points = np.concatenate([p["sparse"][1 if i else 0:] for i, p in enumerate(parts)])
    grey = (depth.astype(np.float32) / 257.0).round().astype(np.uint8)  # 0 = near: dark
    fps = config.video.fps
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        png = io.BytesIO()
        Image.fromarray(parts[0]["video"][0]).save(png, format="PNG")
        row = {"first_frame": base64.b64encode(png.getvalue()).decode("ascii"),
               "depth_video": encoded_mp4(np.repeat(grey[..., None], 3, axis=-1), fps, folder,
                                          "depth.mp4"),
               "point_map_video": encoded_mp4(points, fps, folder, "points.mp4"),
               "caption": chosen[0].caption, "frames": int(len(depth))}
    mlflow.set_tracking_uri(tracking_uri(config))
    started = time.perf_counter()
    model = mlflow.pyfunc.load_model(model_uri)
    load_seconds = time.perf_counter() - started
    calls = []
    for _ in range(2):
        started = time.perf_counter()
        answer = model.predict([row], params={"seed": 0})
        calls.append(time.perf_counter() - started)
    frames = int(answer.iloc[0]["frames"])
    report = {"model": model_uri, "source": source, "clips": clips, "frames": frames,
              "load_seconds": round(load_seconds, 2),
              "predict_seconds": [round(s, 2) for s in calls],
              "seconds_per_clip": round(calls[-1] / clips, 2),
              "generation": {"steps": config.generation.steps,
                             "guidance": config.generation.guidance,
                             "solver": config.generation.solver},
              "profile": config.profile_name}
    print(json.dumps(report, indent=2))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
