"""Training plumbing: step-indexed batches, progressive phases, checkpoints, and a run killed
with SIGKILL that resumes to exactly the weights of an uninterrupted run (VAE pretraining)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from longvie.config import compose
from longvie.training.sampling import Phase, StepBatchSampler, phase_at, total_steps
from tests.helpers.project import copy_project, resources_with

pytestmark = pytest.mark.slow  # the base trained, killed and resumed

PHASES = [Phase(frames=1, steps=3, batch_size=4), Phase(frames=5, steps=2, batch_size=2)]


def test_phases_follow_the_progressive_schedule():
    assert [phase_at(PHASES, s).frames for s in range(6)] == [1, 1, 1, 5, 5, 5]
    assert total_steps(PHASES) == 5


def test_batches_depend_on_the_step_alone_so_a_resumed_run_sees_the_same_data():
    full = list(StepBatchSampler(10, PHASES, seed=3))
    resumed = list(StepBatchSampler(10, PHASES, seed=3, start_step=2))
    assert resumed == full[2:]
    assert [len(b) for b in full] == [4, 4, 4, 2, 2]
    assert list(StepBatchSampler(10, PHASES, seed=4)) != full


def test_a_sampler_iterated_again_continues_from_the_current_step():
    # Lightning iterates the loader again when it believes an epoch ended (it does after a
    # resume): the second pass must start at the trainer's step, not replay the first one's.
    step = {"now": 2}
    sampler = StepBatchSampler(10, PHASES, seed=3, start_step=lambda: step["now"])
    full = list(StepBatchSampler(10, PHASES, seed=3))
    assert next(iter(sampler)) == full[2]
    step["now"] = 3
    assert list(sampler) == full[3:] and len(sampler) == 2


def test_ranks_split_each_global_batch_and_draw_what_one_process_draws():
    from longvie.training.draws import step_draws

    whole = list(StepBatchSampler(10, PHASES, seed=3))
    ranks = [list(StepBatchSampler(10, PHASES, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    assert [a + b for a, b in zip(*ranks, strict=True)] == whole
    one = step_draws(7, 5, 0, 4).samples
    split = step_draws(7, 5, 0, 2).samples + step_draws(7, 5, 2, 2).samples
    assert all(torch.equal(torch.randn(3, generator=a), torch.randn(3, generator=b))
               for a, b in zip(one, split, strict=True))
    assert not torch.equal(torch.randn(3, generator=step_draws(7, 6, 0, 1).samples[0]),
                           torch.randn(3, generator=step_draws(7, 5, 0, 1).samples[0]))
    with pytest.raises(ValueError, match="multiple of 3"):
        StepBatchSampler(10, PHASES, seed=3, world_size=3)


KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    import lightning as L
    from longvie.config import compose
    from longvie.training.base.vae import train_vae

    class KillAt(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    config = compose(["profile=smoke", f"paths.root={sys.argv[1]}"])
    train_vae(config, progress=False, log_mlflow=False, callbacks=(KillAt(),))
    """
)


def test_a_killed_vae_run_resumes_to_the_weights_of_an_uninterrupted_one(curated, tmp_path):
    from longvie.training.base.vae import train_vae

    killed = copy_project(curated, tmp_path / "killed")
    done = subprocess.run([sys.executable, "-c", KILLED_RUN, str(killed), "5"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    checkpoints = killed / "models" / "vae" / "checkpoints"
    assert (checkpoints / "last.ckpt").is_file()
    assert not (killed / "models" / "vae" / "model").exists()

    resumed = train_vae(compose(["profile=smoke", f"paths.root={killed}"]), progress=False,
                        log_mlflow=False)
    straight_root = copy_project(curated, tmp_path / "straight")
    straight = train_vae(compose(["profile=smoke", f"paths.root={straight_root}"]),
                         progress=False, log_mlflow=False)

    assert resumed["steps"] == straight["steps"] == 7
    weights = [load_file(root / "models" / "vae" / "model" / "diffusion_pytorch_model.safetensors")
               for root in (killed, straight_root)]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name


def test_a_finished_run_continues_when_given_more_steps(curated, tmp_path):
    from diffusers import AutoencoderKLWan

    from longvie.training.base.vae import train_vae

    root = copy_project(curated, tmp_path / "more")
    first = train_vae(compose(["profile=smoke", f"paths.root={root}"]), progress=False,
                      log_mlflow=False)
    more = train_vae(compose(["profile=smoke", f"paths.root={root}",
                              "training.vae.phases.2.steps=4"]), progress=False, log_mlflow=False)
    assert (first["steps"], more["steps"]) == (7, 9)
    vae = AutoencoderKLWan.from_pretrained(more["model"])
    assert vae.config.base_dim == 4
    # The latent statistics were measured on the training clips: the codec's latents of those
    # clips have zero mean and unit variance per channel.
    from longvie.model.backbone import LatentCodec
    from longvie.training.clips import ClipDataset, clip_records

    clips = ClipDataset(clip_records(compose(["profile=smoke", f"paths.root={root}"]),
                                     ("train",)), preload=False)
    with torch.no_grad():
        latents = torch.cat([LatentCodec(vae.eval()).encode(clips[i]["video"].unsqueeze(0))
                             for i in range(len(clips))])
    channels = latents.transpose(0, 1).flatten(1)
    assert torch.allclose(channels.mean(dim=1), torch.zeros(16), atol=1e-3)
    assert torch.allclose(channels.std(dim=1), torch.ones(16), atol=1e-3)
    assert 5.0 < more["heldout_psnr_db"] < 60.0
    assert os.path.isfile(root / "models" / "vae" / "checkpoints" / "last.ckpt")


def test_base_pretraining_writes_a_model_folder_later_stages_load_like_pretrained(curated,
                                                                                 tmp_path):
    from longvie.model.backbone import build_transformer
    from longvie.model.text import CaptionTextEncoder
    from longvie.training.base.run import train_base

    root = copy_project(curated, tmp_path / "base")
    config = compose(["profile=smoke", f"paths.root={root}"])
    report = train_base(config, progress=False, log_mlflow=False)

    assert report["steps"] == 8 and report["vae"]["steps"] == 7
    assert report["latents"]["encoded"] == report["latents"]["clips"] > 0
    held_out = report["heldout"]
    assert held_out["clips"] == 4
    assert 0 < held_out["flow_matching_loss"] < 10 and 0 < held_out["flow_matching_loss_at_init"]
    model = Path(report["model"])
    assert {p.name for p in model.iterdir()} == {"transformer", "vae", "text_encoder"}
    config.model.pretrained = str(model)
    assert build_transformer(config.model).config.num_layers == 2
    encoder = CaptionTextEncoder.from_pretrained(model / "text_encoder")
    assert encoder.encode(["a red box"]).shape == (1, 16, 32)
    # A second call finds the latents cached and the training finished.
    again = train_base(compose(["profile=smoke", f"paths.root={root}"]), progress=False,
                       log_mlflow=False)
    assert again["latents"]["encoded"] == 0 and again["steps"] == 8


def test_train_needs_one_known_stage(capsys):
    from longvie.cli import main

    assert main(["train", "profile=smoke"]) == 2
    assert "stage=base" in capsys.readouterr().err
    assert main(["train", "stage=7", "profile=smoke"]) == 2
    assert "stage='7'" in capsys.readouterr().err


def test_the_base_model_asset_materialises_with_its_figures(curated, tmp_path):
    import dagster as dg

    from orchestration.assets.controls import controls_report
    from orchestration.assets.data import curated_clips
    from orchestration.assets.training import base_model
    from orchestration.resources import LongvieConfigResource

    root = copy_project(curated, tmp_path / "dagster")
    resource = LongvieConfigResource(overrides=["profile=smoke", f"paths.root={root}"])
    result = dg.materialize(
        [curated_clips.to_source_asset(), controls_report.to_source_asset(), base_model],
        resources=resources_with(resource), instance=dg.DagsterInstance.ephemeral(),
    )
    [event] = result.asset_materializations_for_node("base_model")
    metadata = event.metadata
    assert metadata["dit_steps"].value == 8 and metadata["vae_steps"].value == 7
    assert metadata["heldout_flow_matching_loss"].value > 0
    assert (root / "reports" / "train_base.json").is_file()
    assert (root / "mlflow.db").is_file()  # the runs went to the project's store


def test_the_latent_cache_follows_the_bytes_of_each_clip_not_its_id(curated, tmp_path):
    """A clip rewritten in place is re-encoded (alone), a deleted clip's latents are removed,
    and stale latents are refused before a stage trains on them."""
    import pandas as pd
    import pytest

    from longvie.errors import LongvieError
    from longvie.model.backbone import build_vae
    from longvie.training.clips import clip_records
    from longvie.training.latents import LatentDataset, encode_clips, latent_file
    from longvie.video.io import read_video
    from tests.helpers.videos import write

    root = copy_project(curated, tmp_path / "cache")
    config = compose(["profile=smoke", f"paths.root={root}"])
    torch.manual_seed(0)
    build_vae(config.model).save_pretrained(root / "vae")
    first = encode_clips(config, root / "vae", progress=False)
    records = clip_records(config, ("train", "val", "benchmark"), with_controls=True)
    assert first["encoded"] == len(records) > 2

    changed, dropped = records[0], records[1]
    before = load_file(latent_file(config, changed.clip_id))["video"]
    frames, fps = read_video(changed.video)
    write(changed.video, frames[:, ::-1].copy(), fps=fps)  # same path, other content
    table = Path(config.paths.curated) / "clips.parquet"
    clips = pd.read_parquet(table)
    clips[clips.clip_id != dropped.clip_id].to_parquet(table)

    with pytest.raises(LongvieError, match=f"changed since their latents were encoded.*"
                                           f"{changed.clip_id}"):
        LatentDataset(config, [changed])
    again = encode_clips(config, root / "vae", progress=False)

    assert (again["encoded"], again["removed"]) == (1, 1)
    assert not torch.equal(load_file(latent_file(config, changed.clip_id))["video"], before)
    assert not latent_file(config, dropped.clip_id).exists()
    assert len(LatentDataset(config, [changed])) == 1
    # The sparse control in another colouring is another cache: refused, then encoded anew.
    splat = compose(["profile=smoke", f"paths.root={root}", "model.sparse_control=first_frame"])
    with pytest.raises(LongvieError, match="'point_map' colouring, model.sparse_control is "
                                           "'first_frame'"):
        LatentDataset(splat, [changed])
    point_map = load_file(latent_file(config, changed.clip_id))["sparse"]
    assert encode_clips(splat, root / "vae", progress=False)["encoded"] == len(records) - 1
    assert not torch.equal(load_file(latent_file(config, changed.clip_id))["sparse"], point_map)
    assert len(LatentDataset(splat, [changed])) == 1
    # A cache from the id-keyed format (no content keys) is named as such, not as "changed".
    manifest = Path(config.paths.models) / "latents" / "manifest.json"
    manifest.write_text(json.dumps({"vae": "old", "clip_ids": [changed.clip_id]}))
    with pytest.raises(LongvieError, match="holds no content keys.*older version"):
        LatentDataset(config, [changed])


def test_only_rank_zero_records_the_mlflow_run_of_a_step(smoke_config, monkeypatch):
    """Another DDP rank's MLflow logger has no run (Lightning logs from rank 0 only): it must not
    overwrite the run id a resumed step continues."""
    import longvie.tracking as tracking
    from longvie.training.trainer import RUN_ID_FILE, checkpoint_dir, mlflow_logger

    monkeypatch.setattr(tracking, "USER_TRACKING_URI", None)
    config = smoke_config()
    id_file = checkpoint_dir(config, "stage1").parent / RUN_ID_FILE
    monkeypatch.setenv("LOCAL_RANK", "1")
    mlflow_logger(config, "stage1", step_name="stage1")
    assert not id_file.exists()
    monkeypatch.delenv("LOCAL_RANK")
    logger = mlflow_logger(config, "stage1", step_name="stage1")
    assert id_file.read_text().strip() == logger.run_id


def test_a_stage_refuses_to_build_on_a_parent_whose_own_parent_was_retrained(smoke_config,
                                                                             tmp_path):
    """`train stage=1` beside a benchmark left stages 2 and 3 built on the old stage 1: the next
    `train stage=3` must say so instead of fine-tuning a stage 2 its parents no longer make."""
    import json

    from longvie.errors import LongvieError
    from longvie.training.stages.run import source_stamp, stale_ancestor, start_source
    from longvie.training.stages.module import STAGES

    config = smoke_config("model.pretrained=")
    models = tmp_path / "models"

    def stage_folder(name: str, parent: Path, weights: bytes) -> Path:
        folder = models / name / "model"
        folder.mkdir(parents=True)
        (folder / "controller.safetensors").write_bytes(weights)
        (folder / "longvie.json").write_text(json.dumps({
            "stage": name, "started_from": str(parent),
            "started_from_stamp": source_stamp(str(parent))}))
        return folder

    base = models / "base" / "model"
    base.mkdir(parents=True)
    (base / "weights.safetensors").write_bytes(b"base")
    stage1 = stage_folder("stage1", base, b"one")
    stage2 = stage_folder("stage2", stage1, b"two")
    assert stale_ancestor(str(stage2)) is None
    assert start_source(config, STAGES["3"]) == str(stage2)

    (stage1 / "controller.safetensors").write_bytes(b"one, retrained")
    assert f"{stage2} was trained from {stage1} as it was before" in stale_ancestor(str(stage2))
    with pytest.raises(LongvieError, match=r"run `longvie train stage=2` again first"):
        start_source(config, STAGES["3"])
