"""DVC: data.dvc versions data/raw, push/pull round-trips it, `dvc repro` runs the stages
(curate, depth_estimator, controls, the base, the three controller stages, the benchmark and the
promotion), then no-ops; `dvc metrics show` / `dvc plots show` present the reports' figures and
`dvc exp run -S` passes Hydra overrides to the steps through params.yaml."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.project import REPO

pytestmark = pytest.mark.slow  # DVC runs the whole smoke pipeline, stage by stage

BIN = Path(sys.executable).parent


def run(cwd: Path, *command: str, env: dict[str, str] | None = None) -> str:
    extra = env or {}
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    env.pop("LONGVIE_ROOT", None)
    env.pop("LONGVIE_PARAMS", None)
    env.pop("MLFLOW_TRACKING_URI", None)  # set by mlflow itself in this process: not the user's
    env |= extra
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return new_project(tmp_path_factory.mktemp("project"))


def new_project(root: Path) -> Path:
    """A fresh git + DVC project holding this repository's pipeline files and smoke raw data,
    with the test's virtual environment as its .venv (what bin/longvie runs)."""
    root.mkdir(parents=True, exist_ok=True)
    # weights/: tiny's shipped base, a dependency of the train_base stage. pretrain.dvc: the
    # pretraining corpus's record, whose data/pretrain a fresh clone does not have.
    for name in ("conf", "src", "orchestration", "bin", "weights", "dvc.yaml", "data.dvc",
                 "pretrain.dvc", ".dvcignore", ".gitignore"):
        source = REPO / name
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(source, root / name)
    (root / ".venv").symlink_to(BIN.parent)
    params, found = re.subn(r"^profile: \w+$", "profile: smoke", (REPO / "params.yaml").read_text(),
                            flags=re.MULTILINE)
    assert found == 1
    (root / "params.yaml").write_text(params)
    run(root, "git", "init", "-q")
    run(root, "dvc", "init", "-q")
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")
    out = run(root, "longvie", "synth", "profile=smoke")
    assert "data.dvc now tracks data/raw" in out
    return root


def test_synth_records_the_raw_data_in_data_dvc(project):
    outs = yaml.safe_load((project / "data.dvc").read_text())["outs"][0]
    assert outs["path"] == "data/raw"
    assert outs["md5"].endswith(".dir") and outs["nfiles"] >= 12  # 4 videos x 3 files + manifest


def test_push_and_pull_round_trip_the_raw_data(project):
    before = digest(project / "data" / "raw")
    shutil.rmtree(project / "data" / "raw")
    shutil.rmtree(project / ".dvc" / "cache")
    run(project, "dvc", "pull", "-q", "data.dvc")
    assert digest(project / "data" / "raw") == before


def test_repro_runs_the_pipeline_and_a_second_repro_does_nothing(project):
    first = run(project, "dvc", "repro")
    for stage in ("curate", "depth_estimator", "controls", "train_base", "train_stage1",
                  "train_stage2", "train_stage3", "benchmark", "promote"):
        assert f"Running stage '{stage}'" in first
    assert (project / "reports" / "curation.json").is_file()
    assert (project / "data" / "curated" / "clips.parquet").is_file()
    assert (project / "data" / "controls" / "controls.parquet").is_file()
    second = run(project, "dvc", "repro")
    assert "Running stage" not in second
    assert "didn't change" in second or "up to date" in second
    metrics = run(project, "dvc", "metrics", "show")
    assert "videos_curated" in metrics
    assert "median_epe_px" in metrics and "abs_rel" in metrics
    assert "loss_with_controls" in metrics and "loss_with_history" in metrics
    assert "seam_discontinuity" in metrics and "candidate_version" in metrics
    assert (project / "models" / "stage3" / "model" / "longvie.json").is_file()


def test_make_run_on_postgresql_leaves_dvc_clean_and_a_stage_that_cannot_start_keeps_outputs(
    tmp_path, postgres,
):
    """`make run` with the Dagster instance and the MLflow store on PostgreSQL (one make run
    serves both checks: it is most of this test's minutes). Afterwards DVC knows every stage:
    nothing to repro. A stage runs whatever the caller's PATH, and one whose command cannot
    start deletes nothing."""
    import dagster as dg
    from mlflow import MlflowClient

    root = new_project(tmp_path / "made")
    home = root / ".dagster_home"
    home.mkdir()
    dagster_url = postgres.database("dagster_make_run")
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {dagster_url}\ntelemetry:\n  enabled: false\n")
    mlflow_url = postgres.database("mlflow_make_run")
    made = run(root, str(BIN / "python"), "-m", "orchestration.main_job", "profile=smoke",
               env={"DAGSTER_HOME": str(home), "MLFLOW_TRACKING_URI": mlflow_url})
    assert "dvc.lock records every stage of this run" in made

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        runs = instance.get_runs()
        assert sorted({r.job_name for r in runs}) == ["controls", "curation", "training"]
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    finally:
        instance.dispose()
    versions = MlflowClient(mlflow_url).search_model_versions("name='longvie'")
    assert {v.tags.get("longvie.stage") for v in versions} >= {"base", "stage1", "stage2",
                                                                "stage3"}
    assert not (root / "mlflow.db").exists() and not (home / "runs.db").exists()

    dvc = str(BIN / "dvc")
    assert "Data and pipelines are up to date" in run(root, dvc, "status", "dvc.yaml")
    # What a fresh clone's plain `dvc status` adds: the corpus it never rendered, nothing else.
    assert run(root, dvc, "status", "--json").strip() == (
        '{"pretrain.dvc": [{"changed outs": {"data/pretrain": "not in cache"}}]}')
    assert "Running stage" not in run(root, dvc, "repro")

    curated = digest(root / "data" / "curated")
    report_bytes = (root / "reports" / "curation.json").read_bytes()
    failed = subprocess.run([dvc, "repro", "--force", "--single-item", "curate"], cwd=root,
                            env={**os.environ, "LONGVIE_PYTHON": str(root / "no-python"),
                                 "DVC_NO_ANALYTICS": "1"},
                            capture_output=True, text=True, check=False)
    assert failed.returncode != 0
    assert "bin/longvie: no Python at" in failed.stdout + failed.stderr
    assert digest(root / "data" / "curated") == curated
    assert (root / "reports" / "curation.json").read_bytes() == report_bytes

    # No venv on PATH (the shell of someone who never activated it): the stage still runs.
    again = run(root, dvc, "repro", "--force", "--single-item", "curate",
                env={"PATH": "/usr/bin:/bin"})
    assert "Running stage 'curate'" in again
    assert digest(root / "data" / "curated") == curated  # curation is byte-reproducible


def report(project: Path, name: str) -> dict:
    return json.loads((project / "reports" / f"{name}.json").read_text())


def test_metrics_show_lists_the_training_and_benchmark_figures(project):
    (workspace,) = json.loads(run(project, "dvc", "metrics", "show", "--json")).values()
    shown = {path: entry["data"] for path, entry in workspace["data"].items()}
    base = shown["reports/train_base.json"]
    assert base["heldout"] == report(project, "train_base")["heldout"]
    for stage, figure in (("1", "loss_with_controls"), ("2", "loss_degraded_first_frame"),
                          ("3", "loss_with_history")):
        written = report(project, f"train_{stage}")
        assert shown[f"reports/train_{stage}.json"]["steps"] == written["steps"]
        assert shown[f"reports/train_{stage}.json"]["heldout"][figure] == written["heldout"][figure]
    benchmark = report(project, "benchmark")
    for model in ("candidate", "naive", "static"):
        for figure in ("ssim", "psnr_db", "seam_discontinuity", "ssim_drift_slope"):
            value = shown["reports/benchmark.json"]["models"][model][figure]
            assert isinstance(value, float) and value == benchmark["models"][model][figure]
    assert shown["reports/promotion.json"]["decision"] == report(project, "promotion")["decision"]


def test_plots_show_lists_the_loss_and_per_clip_plots(project, tmp_path):
    shown = json.loads(run(project, "dvc", "plots", "show", "--json", "-o", str(tmp_path)))["data"]
    for image in ("train_1_loss", "train_2_loss", "train_3_loss", "benchmark_per_clip"):
        assert [entry["type"] for entry in shown[f"reports/{image}.png"]] == ["image"]
    (loss,) = shown["training_loss"]
    points: dict[str, int] = {}
    for value in loss["content"]["data"]["values"]:
        points[value["filename"]] = points.get(value["filename"], 0) + 1
    assert points == {f"train_{n}_loss.csv": report(project, f"train_{n}")["steps"]
                      for n in (1, 2, 3)}  # one loss per optimizer step
    per_clip = report(project, "benchmark")["per_clip"]
    for plot, figure in (("benchmark_ssim", "ssim"), ("benchmark_psnr", "psnr_db"),
                         ("benchmark_sharpness", "sharpness_ratio")):
        (entry,) = shown[plot]
        assert entry["type"] == "vega"
        for model in ("candidate", "naive", "static"):
            series = [float(v["dvc_inferred_y_value"]) for v in entry["content"]["data"]["values"]
                      if v["field"] == f"{model}_{figure}"]
            assert series == pytest.approx(per_clip[model][figure])


def test_exp_run_passes_a_hydra_override_to_the_steps(project):
    """`dvc exp run --temp -S ++key=value`: params.yaml carries the override, only the stages
    that track its config group (and those downstream) re-run, the workspace keeps its results."""
    kept = ("params.yaml", "dvc.lock", "reports/train_3.json", "reports/benchmark.json")
    before = {name: (project / name).read_bytes() for name in kept}
    git = ("git", "-c", "user.email=test@example.com", "-c", "user.name=test")
    run(project, *git, "add", "-A")
    run(project, *git, "commit", "-qm", "baseline")
    # --temp experiments log to the project's MLflow store only when told (their copy has none).
    out = run(project, "dvc", "exp", "run", "--temp", "-n", "short", "-S",
              "++training.stage3.steps=4", "-S", "++benchmark.steps=4",
              env={"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"})
    for stage in ("curate", "depth_estimator", "controls", "train_base", "train_stage1",
                  "train_stage2"):
        assert f"Stage '{stage}' didn't change" in out
    for stage in ("train_stage3", "benchmark", "promote"):
        assert f"Running stage '{stage}'" in out
    assert {name: (project / name).read_bytes() for name in kept} == before
    assert report(project, "train_3")["steps"] != 4

    baseline = next(e for e in json.loads(run(project, "dvc", "exp", "show", "--json"))
                    if e["rev"] != "workspace")
    (experiment,) = [r for e in baseline["experiments"] or [] for r in e["revs"]
                     if r["name"] == "short"]
    params = experiment["data"]["params"]["params.yaml"]["data"]
    assert params["training"]["stage3"] == {"steps": 4} and params["benchmark"] == {"steps": 4}
    metrics = experiment["data"]["metrics"]
    assert metrics["reports/train_3.json"]["data"]["steps"] == 4
    assert metrics["reports/benchmark.json"]["data"]["sampler"]["steps"] == 4
    assert (baseline["data"]["metrics"]["reports/train_3.json"]["data"]["steps"]
            == report(project, "train_3")["steps"])
