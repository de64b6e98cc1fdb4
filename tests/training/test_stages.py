"""The controller stages: what each one feeds the model, what it trains, what it leaves behind.

Unit tests build small random parts; the end-to-end tests train base -> 1 -> 2 -> 3 on the smoke
data with MLflow on, and kill stage 3 mid-run to check it resumes exactly.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from longvie.config import ConfigError, compose
from longvie.errors import LongvieError
from longvie.training.draws import step_draws
from longvie.training.stages.module import (
    STAGES,
    ControllerModule,
    FlowBatch,
    control_input,
    flow_matching_terms,
    history_input,
)
from tests.helpers.project import copy_project, resources_with

pytestmark = pytest.mark.slow  # stages 1-3 trained

B, F, H, W = 2, 3, 4, 4  # latent batch: 9 pixel frames of 32 x 32 (smoke)


def latents(seed: int) -> torch.Tensor:
    return torch.randn(B, 16, F, H, W, generator=torch.Generator().manual_seed(seed))


def small_module(stage: str, *overrides: str) -> ControllerModule:
    """A stage module on freshly initialised smoke-sized parts."""
    from longvie.model.backbone import build_transformer, build_vae
    from longvie.model.controller import DualController, LongVieTransformer
    from longvie.model.text import CaptionTextEncoder, CaptionVocabulary

    config = compose(["profile=smoke", *overrides])
    torch.manual_seed(0)
    base = build_transformer(config.model)
    transformer = LongVieTransformer(base, DualController(base, config.model.controller.num_layers))
    text = CaptionTextEncoder(CaptionVocabulary.build(["a red box"]), 32, 16, 1, 2)
    spec = STAGES[stage]
    return ControllerModule(spec, getattr(config.training, spec.name), transformer, text,
                            build_vae(config.model), 3.0, 0.0, 0, "first_frame")


def batch(with_previous: bool = True) -> dict:
    generator = torch.Generator().manual_seed(5)
    return {
        "video": latents(1), "dense": latents(2), "sparse": latents(3),
        "caption": ["a red box"] * B,
        "depth": torch.rand(B, 1, 9, 32, 32, generator=generator),
        "first_frame": torch.rand(B, 3, 32, 32, generator=generator) * 2 - 1,
        "previous": latents(4), "has_previous": torch.tensor([with_previous] * B),
    }


def test_controls_and_history_enter_in_the_36_channel_layout():
    control = control_input(latents(0))
    assert control.shape == (B, 36, F, H, W)
    assert torch.equal(control[:, :16], latents(0))
    assert torch.all(control[:, 16:20, 0] == 1) and torch.all(control[:, 16:20, 1:] == 0)
    assert torch.equal(control[:, 20:, 0], latents(0)[:, :, 0])
    assert torch.all(control[:, 20:, 1:] == 0)
    history = history_input(latents(0)[:, :, :2])
    assert history.shape == (B, 36, 2, H, W)
    assert torch.all(history[:, 16:20] == 1)  # every history frame is known
    assert torch.equal(history[:, 20:], latents(0)[:, :, :2])


def test_stage3_terms_tie_the_first_latent_and_consistency_needs_history():
    module = small_module("3")
    text = module.text_encoder.encode(["a red box"] * B)
    weights = {"w_deg": 0.2, "w_gt": 0.15, "w_cons": 0.5}
    flow = FlowBatch(latents(1), control_input(latents(1))[:, 20:], text, latents(2), latents(3))
    with torch.no_grad():
        alone = flow_matching_terms(module.transformer, flow, step_draws(0, 0, 0, B).samples,
                                    3.0, weights)
    assert set(alone) == {"diff", "deg", "gt", "cons", "total"}
    assert float(alone["cons"]) == 0.0  # no history: nothing to be consistent with
    flow.history = latents(4)[:, :, -2:]
    with torch.no_grad():
        terms = flow_matching_terms(module.transformer, flow, step_draws(0, 0, 0, B).samples,
                                    3.0, weights)
    assert float(terms["cons"]) > 0
    expected = terms["diff"] + 0.2 * terms["deg"] + 0.15 * terms["gt"] + 0.5 * terms["cons"]
    assert torch.allclose(terms["total"], expected)
    with torch.no_grad():
        plain = flow_matching_terms(module.transformer, flow, step_draws(0, 0, 0, B).samples,
                                    3.0)
    assert set(plain) == {"total"}


def test_stage1_degrades_the_dense_control_only_in_its_last_third():
    module = small_module("1", "training.stage1.steps=30", "training.stage1.data_p=1.0",
                          "training.stage1.feature_p=1.0")
    assert module.degrade_from_step() == 20
    early = module.flow_batch(batch(), 19, module.step_draws(19, B))
    assert early.dense_scale is None and torch.equal(early.dense, latents(2))
    late = module.flow_batch(batch(), 20, module.step_draws(20, B))
    assert late.dense_scale.shape == (B,)
    assert torch.all((0.05 <= late.dense_scale) & (late.dense_scale <= 1.0))
    assert not torch.equal(late.dense, latents(2))  # blurred / re-mixed depth, encoded again
    assert torch.equal(late.sparse, latents(3))  # the sparse control is never degraded


def test_stage2_conditions_on_the_degraded_frame_with_its_probability():
    clean = small_module("2", "training.stage2.first_frame_p=0.0")
    kept = clean.flow_batch(batch(), 0, clean.step_draws(0, B))
    assert torch.equal(kept.condition[:, :, 0], latents(1)[:, :, 0])
    degraded = small_module("2", "training.stage2.first_frame_p=1.0")
    changed = degraded.flow_batch(batch(), 0, degraded.step_draws(0, B))
    assert not torch.equal(changed.condition[:, :, 0], latents(1)[:, :, 0])
    assert torch.all(changed.condition[:, :, 1:] == 0)  # still one known frame
    assert changed.history is None  # history is stage 3's


def with_tracks(items: dict) -> dict:
    """``items`` with 16 tracks per clip drifting right, and a depth video (smoke: 9 x 32 x 32)."""
    generator = torch.Generator().manual_seed(6)
    query = torch.rand(B, 16, 2, generator=generator) * 31
    shift = torch.arange(9, dtype=torch.float32).view(1, 9, 1, 1) * torch.tensor([1.0, 0.0])
    return items | {"query_xy": query, "tracks_xy": query.unsqueeze(1) + shift,
                    "tracks_visible": torch.ones(B, 9, 16, dtype=torch.bool),
                    "track_depth": torch.rand(B, 9, 32, 32, generator=generator)}


def test_a_degraded_first_frame_colours_its_own_sparse_control():
    """Generation splats the sparse control from the last generated frame, so training splats
    it from T(I): the model never sees a clean control beside a degraded frame."""
    kept = small_module("2", "training.stage2.first_frame_p=0.0")
    clean = kept.flow_batch(with_tracks(batch()), 0, kept.step_draws(0, B))
    assert torch.equal(clean.sparse, latents(3))  # T(I) = I: the cached control stays
    module = small_module("2", "training.stage2.first_frame_p=1.0")
    items, degraded = with_tracks(batch()), []
    degrade = module.degrade_frames
    module.degrade_frames = lambda *args: degraded.append(degrade(*args)[0]) or (degraded[-1],
                                                                                 ["encoding:1"])
    flow = module.flow_batch(items, 0, module.step_draws(0, B))
    del module.degrade_frames
    for index, frames in enumerate(degraded):
        assert torch.allclose(flow.sparse[index:index + 1],
                              module.splat_sparse(frames, items, index), atol=1e-5)
    assert not torch.equal(flow.sparse, latents(3))
    untracked = module.flow_batch(batch(), 0, module.step_draws(0, B))
    assert torch.equal(untracked.sparse, latents(3))  # point-map colouring: nothing to splat
    assert torch.equal(untracked.condition, flow.condition)  # same draws either way


def test_stage3_history_is_the_end_of_the_preceding_clip():
    module = small_module("3", "training.stage3.no_history_p=0.0",
                          "training.stage3.first_frame_p=0.0")
    counts = set()
    for step in range(12):
        flow = module.flow_batch(batch(), step, module.step_draws(step, B))
        count = flow.history.shape[2]
        counts.add(count)
        assert torch.equal(flow.history, latents(4)[:, :, -count:])
    assert counts == {1, 2}  # history_frames [4, 8] on smoke
    none = small_module("3", "training.stage3.no_history_p=1.0")
    assert none.flow_batch(batch(), 0, none.step_draws(0, B)).history is None


def test_history_lengths_must_be_whole_latent_frames_of_a_clip():
    with pytest.raises(ConfigError, match="training.stage3.history_frames"):
        compose(["profile=smoke", "training.stage3.history_frames=[6]"])
    with pytest.raises(ConfigError, match="training.stage3.history_frames"):
        compose(["profile=smoke", "training.stage3.history_frames=[12]"])  # clips have 9 frames


@pytest.mark.parametrize("stage, base_keys", [("1", False), ("3", True)])
def test_checkpoints_hold_only_what_a_stage_trains(stage, base_keys):
    module = small_module(stage)
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    kept = set(checkpoint["state_dict"])
    assert any(k.startswith("transformer.controller.") for k in kept)
    base = {k for k in kept if k.startswith("transformer.base.")}
    assert bool(base) == base_keys
    assert all(".attn1." in k for k in base)
    assert not any(k.startswith(("frozen", "text_encoder", "vae")) for k in kept)


# --- end to end on the smoke data ------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(curated, tmp_path_factory) -> Path:
    """base -> stage 1 -> 2 -> 3 on the smoke data, with MLflow on."""
    from longvie.training.base.run import train_base
    from longvie.training.stages.run import train_stage

    root = copy_project(curated, tmp_path_factory.mktemp("stages"))
    config = compose(["profile=smoke", f"paths.root={root}"])
    train_base(config, progress=False)
    for stage in ("1", "2", "3"):
        train_stage(config, stage, progress=False)
    return root


def report(root: Path, stage: str) -> dict:
    return json.loads((root / "reports" / f"train_{stage}.json").read_text())


def test_each_stage_reports_its_held_out_comparison(trained):
    stage1, stage2, stage3 = (report(trained, s) for s in ("1", "2", "3"))
    assert stage1["steps"] == 3 and stage2["steps"] == 2 and stage3["steps"] == 3
    assert {"loss_with_controls", "loss_controls_zeroed", "loss_with_controls_base"} <= set(
        stage1["heldout"])
    assert {"loss_degraded_first_frame", "loss_degraded_first_frame_stage1"} <= set(
        stage2["heldout"])
    assert sum(stage2["heldout"]["degradations"].values()) == stage2["heldout"]["clips"]
    assert {"loss_with_history", "loss_without_history", "loss_with_history_stage2"} <= set(
        stage3["heldout"])
    # A fresh controller is the identity: before stage 1 the controls change nothing.
    before = [v for k, v in stage1["heldout"].items() if k.endswith("_base")]
    assert len(set(before)) == 1
    for stage in ("1", "2", "3"):
        assert (trained / "reports" / f"train_{stage}_sample.gif").stat().st_size > 0
        assert (trained / "reports" / f"train_{stage}_loss.png").stat().st_size > 0


def test_each_stage_starts_from_the_previous_one_and_trains_only_its_part(trained):
    models = trained / "models"

    def weights(stage: str, part: str) -> dict:
        folder = models / stage / "model" / part
        return load_file(next(folder.glob("*.safetensors")))

    base = weights("base", "transformer")
    stage2_base, stage3_base = weights("stage2", "transformer"), weights("stage3", "transformer")
    assert all(torch.equal(base[k], stage2_base[k]) for k in base)  # frozen in stages 1-2
    changed = {k for k in base if not torch.equal(base[k], stage3_base[k])}
    assert changed and all(".attn1." in k for k in changed)  # stage 3: self-attention only
    controllers = [weights(s, "controller") for s in ("stage1", "stage2", "stage3")]
    for earlier, later in zip(controllers, controllers[1:], strict=False):
        assert any(not torch.equal(earlier[k], later[k]) for k in earlier)
    meta = json.loads((models / "stage3" / "model" / "longvie.json").read_text())
    assert meta["stage"] == "stage3" and meta["started_from"].endswith("stage2/model")


def test_a_stage_folder_loads_back_into_the_same_generator(trained):
    from longvie.model.folder import load_generator

    config = compose(["profile=smoke", f"paths.root={trained}"])
    loaded = load_generator(str(trained / "models" / "stage3" / "model"), config.model)
    assert loaded.stage == "stage3"
    saved = load_file(trained / "models" / "stage3" / "model" / "controller" /
                      "model.safetensors")
    state = loaded.transformer.controller.state_dict()
    assert all(torch.equal(state[k], saved[k]) for k in saved)
    x = torch.randn(1, 36, 3, 4, 4)
    text = loaded.text_encoder.encode(["a red box"])
    out = loaded.transformer(x, torch.tensor([500.0]), text, dense=x, sparse=x,
                             history=x[:, :, :1])
    assert out.shape == (1, 16, 3, 4, 4) and torch.isfinite(out).all()


def test_every_stage_is_an_mlflow_run_and_a_registered_version(trained):
    import mlflow
    from mlflow import MlflowClient

    from longvie.data_version import raw_data_hash

    client = MlflowClient(f"sqlite:///{trained}/mlflow.db")
    versions = sorted(client.search_model_versions("name='longvie'"), key=lambda v: int(v.version))
    assert [v.tags["longvie.stage"] for v in versions] == ["base", "stage1", "stage2", "stage3"]
    for version in versions:
        assert version.tags["longvie.data_hash"] == (raw_data_hash(trained) or "untracked")
        assert version.tags["longvie.git_commit"]
        run = client.get_run(version.run_id)
        assert run.info.status == "FINISHED"
        # Each version is an MLflow pyfunc model whose weights artifact is the stage folder.
        files = {f.path for f in client.list_artifacts(version.run_id, "model")}
        assert {"model/MLmodel", "model/entry.py", "model/artifacts"} <= files
        weights = {f.path for f in client.list_artifacts(version.run_id, "model/artifacts/model")}
        assert "model/artifacts/model/transformer" in weights
    stage3 = client.get_run(versions[-1].run_id)
    assert stage3.data.params["training.stage3.w_cons"] == "0.5"
    assert "stage3/heldout/loss_with_history" in stage3.data.metrics
    assert [m.step for m in client.get_metric_history(stage3.info.run_id, "stage3/loss")]
    pictures = {f.path for f in client.list_artifacts(stage3.info.run_id, "pictures")}
    assert {"pictures/train_3_sample.gif", "pictures/train_3_loss.png"} <= pictures
    # A re-run that finds the stage trained adds no version.
    from longvie.training.stages.run import train_stage

    again = train_stage(compose(["profile=smoke", f"paths.root={trained}"]), "3", progress=False)
    assert again["mlflow"]["version"] == int(versions[-1].version)
    assert len(client.search_model_versions("name='longvie'")) == len(versions)
    mlflow.set_tracking_uri(f"sqlite:///{trained}/mlflow.db")
    downloaded = Path(mlflow.artifacts.download_artifacts(f"models:/longvie/{versions[-1].version}"))
    from longvie.pyfunc.model_folder import weights_of

    assert json.loads((weights_of(downloaded) / "longvie.json").read_text())["stage"] == "stage3"


def test_a_stage_needs_the_previous_one(curated, tmp_path):
    from longvie.training.stages.run import train_stage

    root = copy_project(curated, tmp_path / "alone")
    with pytest.raises(LongvieError, match="stage=1"):
        train_stage(compose(["profile=smoke", f"paths.root={root}"]), "2", progress=False,
                    log_mlflow=False)


KILLED_STAGE = textwrap.dedent(
    """
    import os, signal, sys
    import lightning as L
    from longvie.config import compose
    from longvie.training.stages.run import train_stage

    class KillAt(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    config = compose(["profile=smoke", f"paths.root={sys.argv[1]}", *sys.argv[3:]])
    train_stage(config, "3", progress=False, log_mlflow=False, callbacks=(KillAt(),))
    """
)


def test_a_killed_stage3_run_resumes_to_the_weights_of_an_uninterrupted_one(trained, tmp_path):
    from longvie.training.stages.run import train_stage

    # Every mechanism on: history, degraded history and first frame; checkpoints every 2 steps.
    overrides = ["training.stage3.steps=6", "training.stage3.first_frame_p=1.0",
                 "training.stage3.no_history_p=0.3"]
    killed = copy_project(trained, tmp_path / "killed", ("data", "models"))
    straight = copy_project(trained, tmp_path / "straight", ("data", "models"))
    for root in (killed, straight):
        shutil.rmtree(root / "models" / "stage3")
    done = subprocess.run([sys.executable, "-c", KILLED_STAGE, str(killed), "3", *overrides],
                          capture_output=True, text=True, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert (killed / "models" / "stage3" / "checkpoints" / "last.ckpt").is_file()

    def run(root: Path) -> dict:
        return train_stage(compose(["profile=smoke", f"paths.root={root}", *overrides]), "3",
                           progress=False, log_mlflow=False)

    assert run(killed)["steps"] == run(straight)["steps"] == 6
    files = [load_file(root / "models" / "stage3" / "model" / "controller" / "model.safetensors")
             for root in (killed, straight)]
    for name in files[0]:
        assert torch.equal(files[0][name], files[1][name]), name


def test_a_stage_can_measure_its_held_out_curve_without_changing_what_it_trains(trained,
                                                                               tmp_path):
    from longvie.training.stages.run import train_stage

    reports = {}
    for name, every in (("plain", 0), ("curve", 1)):
        root = copy_project(trained, tmp_path / name, ("data", "models"))
        shutil.rmtree(root / "models" / "stage1")
        config = compose(["profile=smoke", f"paths.root={root}", "training.stage1.steps=3",
                          f"training.stage1.curve_every={every}"])
        reports[name] = (root, train_stage(config, "1", progress=False, log_mlflow=False))
    (plain_root, plain), (root, curve) = reports["plain"], reports["curve"]
    assert "heldout_curve" not in plain
    points = curve["heldout_curve"]
    assert [point["step"] for point in points] == [0, 1, 2, 3]
    # the first point is the starting model, the last the trained one: the report's own figures
    assert points[0]["with_controls"] == curve["heldout"]["loss_with_controls_base"]
    assert points[-1]["with_controls"] == curve["heldout"]["loss_with_controls"]
    assert (root / "reports" / "train_1_curve.png").stat().st_size > 0
    assert (root / "reports" / "train_1_curve.csv").read_text().startswith("step,with_controls")
    trained_weights = [load_file(r / "models" / "stage1" / "model" / "controller" /
                                 "model.safetensors") for r in (plain_root, root)]
    for key, value in trained_weights[0].items():
        assert torch.equal(value, trained_weights[1][key]), key


def test_the_stage_assets_materialise_in_order_with_their_figures(trained, tmp_path):
    import dagster as dg

    from orchestration.assets.training import (
        base_model,
        stage1_controller,
        stage2_controller,
        stage3_controller,
    )
    from orchestration.definitions import defs
    from orchestration.resources import LongvieConfigResource

    job = defs.resolve_job_def("training")
    assert job.asset_layer.executable_asset_keys == {
        dg.AssetKey(k) for k in ("controls_report", "base_model", "stage1_controller",
                                 "stage2_controller", "stage3_controller", "benchmark",
                                 "promotion")}
    root = copy_project(trained, tmp_path / "dagster", ("data", "models"))
    for stage in ("stage1", "stage2", "stage3"):
        shutil.rmtree(root / "models" / stage)
    resource = LongvieConfigResource(overrides=["profile=smoke", f"paths.root={root}"])
    result = dg.materialize(
        [base_model.to_source_asset(), stage1_controller, stage2_controller, stage3_controller],
        resources=resources_with(resource), instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    for stage in ("1", "2", "3"):
        [event] = result.asset_materializations_for_node(f"stage{stage}_controller")
        assert event.metadata["steps"].value == report(root, stage)["steps"]
        assert "| held-out loss | value |" in event.metadata["heldout"].value
        assert event.metadata["registered_version"].value >= 1
        assert event.metadata["mlflow_run"].value.startswith("http://127.0.0.1:5000/#/experiments/")
