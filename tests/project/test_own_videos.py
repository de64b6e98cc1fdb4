"""The own-footage walkthrough (docs/own_videos.md) runs as written.

The guide's first bash block is executed line by line in a fresh clone on the ``smoke`` profile,
with five generated videos standing in for the user's ``~/Videos``. Then what the guide promises
is checked: the user's videos are curated into the splits it describes, have controls, were
trained on, were benchmarked, and a video was generated from the held-out one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "own_videos.md"
VIDEOS = ("tram", "harbour", "street", "market", "river")

pytestmark = pytest.mark.slow


def walkthrough() -> str:
    """The guide's first ```bash block."""
    return re.search(r"```bash\n(.*?)```", GUIDE.read_text(), re.DOTALL).group(1)


def moving_shapes(path: Path, seed: int, seconds: float = 5.0, fps: int = 16) -> None:
    """A textured background with three coloured boxes moving across it."""
    from longvie.video.io import write_video

    rng = np.random.default_rng(seed)
    height, width = 48, 64
    yy, xx = np.mgrid[:height, :width]
    background = (((yy // 6 + xx // 6) % 2) * 60 + 60 + rng.integers(0, 30, (height, width)))
    boxes = [(rng.integers(0, width - 12), rng.integers(0, height - 12), rng.uniform(-1.5, 1.5),
              rng.uniform(-1, 1), rng.integers(60, 255, 3)) for _ in range(3)]
    frames = []
    for t in range(int(seconds * fps)):
        frame = np.repeat(background[..., None], 3, axis=-1).astype(np.uint8)
        for x, y, dx, dy, colour in boxes:
            left = int(x + dx * t) % (width - 12)
            top = int(y + dy * t) % (height - 12)
            frame[top:top + 12, left:left + 12] = colour
        frames.append(frame)
    write_video(path, np.stack(frames), fps)


@pytest.fixture(scope="module")
def walked(tmp_path_factory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("own_videos")
    project = base / "project"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(project)], check=True)
    shutil.rmtree(project / "conf")
    shutil.copytree(ROOT / "conf", project / "conf")  # the config of the code under test
    videos = base / "Videos"
    videos.mkdir()
    for seed, name in enumerate(VIDEOS):
        moving_shapes(videos / f"{name}.mp4", seed)
    (project / "smoke.yaml").write_text("profile: smoke\n")
    env = {**os.environ, "LONGVIE_ROOT": str(project),
           "LONGVIE_PARAMS": str(project / "smoke.yaml"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    script = "set -euo pipefail\n" + walkthrough().replace("~/Videos", str(videos))
    done = subprocess.run(["bash", "-c", script], cwd=project, env=env, capture_output=True,
                          text=True, timeout=1200, check=False)
    assert done.returncode == 0, (f"the walkthrough failed:\n{done.stdout[-3000:]}\n"
                                  f"{done.stderr[-3000:]}")
    return project, done.stdout


def test_the_users_videos_are_curated_into_the_splits_the_guide_describes(walked):
    import pandas as pd

    project, printed = walked
    clips = pd.read_parquet(project / "data" / "curated" / "clips.parquet")
    mine = clips[clips["source_path"].str.startswith("mine/")]
    splits = mine.groupby("source_path")["split"].first().to_dict()
    assert splits == {"mine/benchmark/harbour.mp4": "benchmark",
                      **{f"mine/{n}.mp4": "train" for n in VIDEOS if n != "harbour"}}
    captions = mine.groupby("source_path")["caption"].first()
    assert captions["mine/tram.mp4"] == "a red tram crossing a square"
    assert captions["mine/benchmark/harbour.mp4"] == "boats moored in a harbour"
    assert captions["mine/street.mp4"] == "street"  # no sidecar: the file name
    assert "harbour-04b459" in printed and "benchmark" in printed  # `longvie sources`


def test_the_data_version_records_the_users_videos(walked):
    project, _ = walked
    committed = subprocess.run(["git", "show", "HEAD:data.dvc"], cwd=project, capture_output=True,
                               text=True, check=True).stdout
    assert (project / "data.dvc").read_text() != committed  # a new md5 for data/raw
    assert (project / ".dvc-remote").is_dir() or (project.parent / ".dvc-remote").is_dir()


def test_the_users_videos_get_controls_and_the_export_can_be_watched(walked):
    project, _ = walked
    assert list((project / "data" / "controls" / "harbour-04b459").glob("*.npz"))
    exported = project / "outputs" / "controls" / "harbour-04b459"
    assert sorted(p.name for p in exported.iterdir()) == ["depth.mp4", "point_map.mp4",
                                                          "side_by_side.mp4"]


def test_the_candidate_trained_on_them_was_benchmarked_on_the_held_out_one(walked):
    project, printed = walked
    reports = project / "reports"
    stage3 = json.loads((reports / "train_3.json").read_text())
    assert stage3["train_clips"] > 0 and stage3["mlflow"]["version"] >= 4
    benchmark = json.loads((reports / "benchmark.json").read_text())
    assert "harbour-04b459" in benchmark["videos"]
    assert benchmark["candidate_version"] == stage3["mlflow"]["version"]
    promotion = json.loads((reports / "promotion.json").read_text())
    assert promotion["candidate_version"] == benchmark["candidate_version"]
    assert promotion["decision"] in {"champion", "challenger"}
    assert re.search(rf"^{promotion['candidate_version']}\s+stage3", printed, re.MULTILINE)  # models


def test_a_video_is_generated_from_the_held_out_source(walked):
    from longvie.video.io import read_video

    project, printed = walked
    frames, _ = read_video(project / "outputs" / "harbour.mp4")
    assert frames.shape[1:] == (32, 32, 3) and len(frames) > 9  # several clips, smoke's size
    assert f"{len(frames)} frames in" in printed and "from harbour-04b459" in printed
