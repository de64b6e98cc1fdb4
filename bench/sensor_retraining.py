"""A new video dropped into data/raw retrains the real model through the data sensor.

Run in a project where `make run` has run (its models, MLflow registry and Dagster instance):

    cd <project> && .venv/bin/python bench/sensor_retraining.py [--max-ticks=8]

1. writes a new video (coloured boxes moving over a checkerboard, 128 x 128, 20 s at 8 fps) and
   its caption into ``data/raw/dropped/``;
2. records the new data version: ``dvc commit --force data.dvc``;
3. evaluates ``raw_data_sensor`` tick after tick on the project's Dagster instance, as the daemon
   does, and executes every run a tick asks for in-process on that instance (the daemon would
   launch the same job with the same tags and partition), until the sensor's cursor reaches the
   new data version (its retraining succeeded) or ``--max-ticks`` ticks have passed;
4. reports what ran, the model version the retraining registered and the gate's decision on it,
   and writes ``bench/results/sensor_retraining.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from script_options import take_option

ROOT = Path(__file__).resolve().parents[1]
CAPTION = "three coloured boxes sliding over a grey checkerboard"


def dropped_video(path: Path, seconds: float = 20.0, fps: int = 8, size: int = 128) -> None:
    from longvie.video.io import write_video

    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:size, :size]
    background = ((yy // 16 + xx // 16) % 2) * 70 + 70 + rng.integers(0, 20, (size, size))
    boxes = [(rng.integers(0, size - 28), rng.integers(0, size - 28), rng.uniform(-2, 2),
              rng.uniform(-1.5, 1.5), rng.integers(80, 255, 3)) for _ in range(3)]
    frames = []
    for t in range(int(seconds * fps)):
        frame = np.repeat(background[..., None], 3, axis=-1).astype(np.uint8)
        for x, y, dx, dy, colour in boxes:
            left, top = int(x + dx * t) % (size - 28), int(y + dy * t) % (size - 28)
            frame[top:top + 28, left:left + 28] = colour
        frames.append(frame)
    write_video(path, np.stack(frames), fps)


def main(args: list[str]) -> int:
    sys.path.insert(0, str(ROOT))  # the orchestration package beside src/
    import dagster as dg

    from longvie.config import compose
    from longvie.data_version import raw_data_hash, record_raw_data
    from longvie.registry import held_versions
    from longvie.tracking import tracking_client
    from orchestration.definitions import defs
    from orchestration.main_job import default_instance, run_config
    from orchestration.resources import DvcResource, LongvieConfigResource, MlflowResource

    ticks_text, overrides = take_option(args, "max-ticks", "8")
    config = compose(overrides)
    root = Path(config.paths.root)
    os.environ.setdefault("LONGVIE_ROOT", str(root))
    instance = default_instance(root)
    client = tracking_client(config)
    name = config.mlflow.registered_model
    before = {"versions": held_versions(client, name), "md5": raw_data_hash(root)}

    video = root / "data" / "raw" / "dropped" / "boxes.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    dropped_video(video)
    video.with_suffix(".txt").write_text(CAPTION + "\n")
    md5 = record_raw_data(root)
    print(f"sensor_retraining: {video.relative_to(root)} dropped, data version "
          f"{before['md5']} -> {md5}", flush=True)

    sensor = defs.resolve_sensor_def("raw_data_sensor")
    # The code location's resources (orchestration/definitions.py), as the daemon has them.
    resources = {"longvie": LongvieConfigResource(overrides=list(overrides)),
                 "dvc": DvcResource(), "mlflow": MlflowResource()}
    cursor, runs, started = None, [], time.perf_counter()
    for tick in range(int(ticks_text)):
        with (dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources,
                                      definitions=defs) as context,
              dg.partition_loading_context(dynamic_partitions_store=instance)):
            result = sensor.evaluate_tick(context)
        cursor = result.cursor or cursor
        requests = result.run_requests or []
        message = result.skip_message or ", ".join(
            f"{r.job_name}[{r.partition_key}]" if r.partition_key else r.job_name
            for r in requests)
        print(f"tick {tick}: {message}", flush=True)
        for update in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(update.partitions_def_name, update.partition_keys)
        for request in requests:
            job = defs.resolve_job_def(request.job_name)
            began = time.perf_counter()
            outcome = job.execute_in_process(run_config=run_config(list(overrides)),
                                             instance=instance, raise_on_error=False,
                                             tags=request.tags,
                                             partition_key=request.partition_key)
            runs.append({"tick": tick, "job": request.job_name,
                         "partition": request.partition_key, "success": outcome.success,
                         "seconds": round(time.perf_counter() - began, 1)})
            print(f"  {runs[-1]}", flush=True)
        if cursor == md5:
            break
    after = held_versions(client, name)
    promotion_path = Path(config.paths.reports) / "promotion.json"
    promotion = json.loads(promotion_path.read_text()) if promotion_path.is_file() else {}
    new_versions = sorted(set(after) - set(before["versions"]))
    result = {"data_version": {"before": before["md5"], "after": md5},
              "cursor_reached_new_version": cursor == md5, "runs": runs,
              "seconds": round(time.perf_counter() - started, 1),
              "versions_registered": new_versions,
              "promotion": {k: promotion.get(k) for k in ("candidate_version", "decision",
                                                          "previous_champion", "reasons")}}
    out = ROOT / "bench" / "results" / "sensor_retraining.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    judged = promotion.get("candidate_version") in new_versions
    print(f"sensor_retraining: {len(runs)} runs in {result['seconds']} s; versions registered "
          f"{new_versions}; the gate judged version {promotion.get('candidate_version')}: "
          f"{promotion.get('decision')} -> {out}")
    return 0 if cursor == md5 and judged else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
