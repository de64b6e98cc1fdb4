"""`longvie pretrain` and the pretrained base: the corpus, the run end to end on smoke, the
shipped folder's checks, and the base step loading it the way wan14b loads Wan."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_project

pytestmark = pytest.mark.slow  # the base pretrained

# --- the corpus ---------------------------------------------------------------------------------


def test_corpus_scenes_are_more_varied_and_the_pipeline_scenes_are_unchanged():
    from longvie.synth.scene import (
        EXTRA_MOTIONS,
        EXTRA_PATTERNS,
        EXTRA_SHAPES,
        sample_scene,
    )

    extended = [sample_scene(seed, 2, 7, 0.6, "extended") for seed in range(60)]
    standard = [sample_scene(seed, 3, 6, 0.5) for seed in range(60)]
    drawn = {o.shape for s in extended for o in s.objects}
    assert set(EXTRA_SHAPES) <= drawn
    assert set(EXTRA_PATTERNS) <= {o.pattern for s in extended for o in s.objects}
    assert set(EXTRA_MOTIONS) <= {o.motion for s in extended for o in s.objects}
    assert "crane" in {s.camera.motion for s in extended}
    assert len({s.ambient for s in extended}) == len(extended)  # light drawn per scene
    for scene in standard:
        assert not {o.shape for o in scene.objects} & set(EXTRA_SHAPES)
        assert (scene.ambient, scene.diffuse, scene.light_colour) == (0.38, 0.75, (1.0, 1.0, 1.0))



def test_the_pipeline_scenes_render_to_the_same_pixels_as_before_the_corpus_existed():
    """The committed data.dvc version holds renders of the standard draws: the extended variety
    must not move a single random draw of them. (md5 taken with the ray caster that decides
    edge hits in float64, the same on every CPU; the one before it gave 86923f0f... on AVX2.)"""
    import hashlib

    from longvie.synth.render import render_scene
    from longvie.synth.scene import sample_scene, video_seed

    digest = hashlib.md5()
    for index in range(3):
        scene = sample_scene(video_seed(0, "train", index), 3, 6, 0.5)
        digest.update(render_scene(scene, "train", 4, 8, 32, 32).rgb.tobytes())
    assert digest.hexdigest() == "adbf0786e12e027fce53e13cf7123b0e"


def test_corpus_seeds_are_disjoint_from_the_pipeline_scenes():
    from longvie.synth.scene import video_seed

    pipeline = {video_seed(0, split, i) for split in ("train", "benchmark") for i in range(2000)}
    corpus = {video_seed(0, "pretrain", i) for i in range(5000)}
    assert not pipeline & corpus


def test_the_corpus_renders_once_and_refuses_other_settings(smoke_config, tmp_path):
    from longvie.synth.corpus import render_corpus
    from longvie.synth.dataset import SynthError

    config = smoke_config("pretrain.corpus.videos=2")
    first = render_corpus(config.synth, config.pretrain.corpus, str(tmp_path / "p"), False)
    assert not first["skipped"] and first["frames"] == 2 * 17
    assert sorted(p.name for p in (tmp_path / "p" / "synth").iterdir()) == [
        "manifest.json", "scene_00000.json", "scene_00000.mp4", "scene_00001.json",
        "scene_00001.mp4"]
    again = render_corpus(config.synth, config.pretrain.corpus, str(tmp_path / "p"), False)
    assert again["skipped"]
    other = smoke_config("pretrain.corpus.videos=3")
    with pytest.raises(SynthError, match="does not hold this corpus"):
        render_corpus(other.synth, other.pretrain.corpus, str(tmp_path / "p"), False)


# --- longvie pretrain end to end ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """`longvie pretrain profile=smoke` in a scratch root (a DVC project, like the repository)."""
    from longvie.cli import main

    root = tmp_path_factory.mktemp("pretrain")
    for command in (("git", "init", "-q"), (sys.executable, "-m", "dvc", "init", "-q")):
        subprocess.run(command, cwd=root, check=True)
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")
    (root / "pretrain.dvc").write_text("outs:\n- path: data/pretrain\n")
    (root / "conf").symlink_to(REPO / "conf")
    assert main(["pretrain", "profile=smoke", f"paths.root={root}"]) == 0
    return root


def test_pretrain_writes_a_diffusers_folder_that_loads_through_from_pretrained(pretrained):
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    from longvie.config import compose
    from longvie.model.folder import load_generator
    from longvie.model.pretrained import check_pretrained

    folder = pretrained / "weights" / "smoke-base"
    assert sorted(p.name for p in folder.iterdir()) == ["longvie.json", "text_encoder",
                                                        "transformer", "vae"]
    assert not [p for p in folder.rglob("*") if p.suffix in (".bin", ".pt", ".pkl", ".ckpt")]
    WanTransformer3DModel.from_pretrained(folder, subfolder="transformer")
    AutoencoderKLWan.from_pretrained(folder, subfolder="vae")
    config = compose(["profile=smoke", f"paths.root={pretrained}",
                      f"model.pretrained={folder}"])
    check_pretrained(str(folder), config.model)
    generator = load_generator(str(folder), config.model, with_controller=False)
    assert generator.transformer.controller is None
    meta = json.loads((folder / "longvie.json").read_text())["pretrain"]
    assert meta["command"].startswith("longvie pretrain")
    assert meta["vae_steps"] == 8 + 2 and meta["dit_steps"] == 12  # L1, then adversarial
    # The corpus is a DVC-tracked data version of its own.
    assert meta["corpus_version"].endswith(".dir")
    assert meta["corpus_version"] == json.loads(
        json.dumps(__import__("yaml").safe_load((pretrained / "pretrain.dvc").read_text())
                   ["outs"][0]["md5"]))


def test_pretrain_reports_held_out_figures_and_pictures_and_its_loss_falls(pretrained):
    report = json.loads((pretrained / "reports" / "pretrain.json").read_text())
    vae, dit = report["vae"]["heldout"], report["dit"]["heldout"]
    assert vae["clips"] == dit["clips"] == 2  # smoke: 1 benchmark scene x 2 clips
    assert report["vae"]["l1_vae"]["heldout"]["clips"] == 2  # before the adversarial part
    assert 0 < vae["psnr_db"] < 100 and 0 < vae["ssim"] <= 1
    assert dit["flow_matching_loss"] < dit["flow_matching_loss_at_init"]
    generated = dit["generated"]
    assert len(generated["sharpness_ratio_per_seed"]) == 2
    assert generated["static_first_frame"]["ssim"] > 0
    assert report["seconds_training"] > 0
    for picture in report["pictures"].values():
        assert Path(picture).stat().st_size > 0


def test_pretrain_is_one_mlflow_run_per_part_with_the_pictures(pretrained):
    import mlflow

    report = json.loads((pretrained / "reports" / "pretrain.json").read_text())
    client = mlflow.MlflowClient(f"sqlite:///{pretrained}/mlflow.db")
    runs = {"vae": report["vae"]["l1_vae"]["mlflow_run_id"],
            "vae_gan": report["vae"]["mlflow_run_id"], "dit": report["dit"]["mlflow_run_id"]}
    for part, run_id in runs.items():
        run = client.get_run(run_id)
        assert run.info.run_name == f"pretrain/{part}"
        assert run.data.tags["longvie.part"] == part
        assert run.info.status == "FINISHED"
        names = {a.path for a in client.list_artifacts(run.info.run_id, "pretrain")}
        assert {"pretrain/pretrain.json", "pretrain/pretrain_samples.png"} <= names


def test_pretrain_again_resumes_and_trains_nothing(pretrained):
    from longvie.cli import main

    before = (pretrained / "weights" / "smoke-base" / "transformer" /
              "diffusion_pytorch_model.safetensors").read_bytes()
    assert main(["pretrain", "profile=smoke", f"paths.root={pretrained}"]) == 0
    report = json.loads((pretrained / "reports" / "pretrain.json").read_text())
    assert report["corpus"]["version"].endswith(".dir")
    assert (pretrained / "weights" / "smoke-base" / "transformer" /
            "diffusion_pytorch_model.safetensors").read_bytes() == before


# --- the shipped folder's checks ----------------------------------------------------------------


@pytest.fixture
def base_folder(smoke_config, tmp_path) -> Path:
    """A random-weight smoke base folder in the pretrain layout."""
    from longvie.model.backbone import build_transformer, build_vae
    from longvie.model.text import CaptionTextEncoder, CaptionVocabulary

    config = smoke_config()
    folder = tmp_path / "base"
    build_transformer(config.model).save_pretrained(folder / "transformer")
    build_vae(config.model).save_pretrained(folder / "vae")
    CaptionTextEncoder(CaptionVocabulary.build(["a red box"]), 32, 16, 1, 2).save_pretrained(
        folder / "text_encoder")
    return folder


def test_a_missing_truncated_or_foreign_base_is_refused_naming_the_file(smoke_config,
                                                                         base_folder):
    from longvie.errors import LongvieError
    from longvie.model.pretrained import check_pretrained

    model = smoke_config().model
    check_pretrained(str(base_folder), model)
    with pytest.raises(LongvieError, match="no such folder"):
        check_pretrained(str(base_folder.parent / "nowhere"), model)

    weights = base_folder / "vae" / "diffusion_pytorch_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:-100])
    with pytest.raises(LongvieError, match=r"vae/diffusion_pytorch_model.safetensors: truncated"):
        check_pretrained(str(base_folder), model)
    weights.unlink()
    with pytest.raises(LongvieError, match=r"vae/diffusion_pytorch_model.safetensors: missing"):
        check_pretrained(str(base_folder), model)
    weights.write_bytes(data)

    config_path = base_folder / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "num_layers": 5}))
    with pytest.raises(LongvieError, match=r"transformer: num_layers is 5 in the folder, 2 in "
                                           r"model.transformer"):
        check_pretrained(str(base_folder), model)
    config_path.unlink()
    with pytest.raises(LongvieError, match=r"transformer/config.json: missing"):
        check_pretrained(str(base_folder), model)


def test_stage1_refuses_a_broken_base_before_training(curated, tmp_path, base_folder):
    from longvie.config import compose
    from longvie.errors import LongvieError
    from longvie.training.stage_run import train_stage

    (base_folder / "text_encoder" / "vocab.json").unlink()
    root = copy_project(curated, tmp_path / "root")
    config = compose(["profile=smoke", f"paths.root={root}", f"model.pretrained={base_folder}"])
    with pytest.raises(LongvieError, match="text_encoder/vocab.json: missing"):
        train_stage(config, "1", progress=False, log_mlflow=False)
    assert not (root / "models" / "stage1").exists()


def test_the_base_step_loads_registers_once_and_stage1_starts_from_it(curated, tmp_path,
                                                                      base_folder):
    import mlflow

    from longvie.cli import train_report
    from longvie.config import compose

    root = copy_project(curated, tmp_path / "root")
    (base_folder / "longvie.json").write_text(json.dumps({"stage": "base", "pretrain": {
        "command": "longvie pretrain profile=smoke", "corpus_version": "abc.dir",
        "vae_steps": 8, "dit_steps": 12, "train_seconds": 1.0}}))
    config = compose(["profile=smoke", f"paths.root={root}", f"model.pretrained={base_folder}",
                      "training.stage1.steps=1"])
    report = train_report(config, "base", progress=False)
    assert report["pretrained"] == str(base_folder) and report["steps"] == 0
    assert report["latents"]["encoded"] == report["latents"]["clips"] > 0
    assert report["heldout"]["flow_matching_loss"] > 0
    client = mlflow.MlflowClient(config.mlflow.tracking_uri)
    version = client.get_model_version("longvie", str(report["mlflow"]["version"]))
    assert version.tags["longvie.stage"] == "base"
    assert version.tags["longvie.pretrained"] == str(base_folder)
    assert version.tags["longvie.pretrain.corpus_version"] == "abc.dir"
    assert version.tags["longvie.pretrain.dit_steps"] == "12"
    again = train_report(config, "base", progress=False)
    assert again["mlflow"]["version"] == report["mlflow"]["version"] and again["mlflow"]["reused"]
    assert again["latents"]["encoded"] == 0  # the latent cache is kept for the same VAE
    stage1 = train_report(config, "1", progress=False)
    assert stage1["steps"] == 1
