"""`longvie pretrain` and the pretrained base: the corpus, the run end to end on smoke, the
shipped folder's checks, and the base step loading it the way wan14b loads Wan."""

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

from tests.helpers.project import REPO, copy_project

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

    weights = [pretrained / "weights" / name / "transformer" /
               "diffusion_pytorch_model.safetensors" for name in ("smoke-base", "smoke-longvie")]
    before = [path.read_bytes() for path in weights]
    assert main(["pretrain", "profile=smoke", f"paths.root={pretrained}"]) == 0
    report = json.loads((pretrained / "reports" / "pretrain.json").read_text())
    assert report["corpus"]["version"].endswith(".dir")
    assert [path.read_bytes() for path in weights] == before


# --- the control part: DiT + controller over the base -------------------------------------------


def test_the_control_part_writes_control_weights_that_name_their_base(pretrained):
    from longvie.config import compose
    from longvie.model.folder import load_generator
    from longvie.model.pretrained import check_controlled

    folder = pretrained / "weights" / "smoke-longvie"
    assert sorted(p.name for p in folder.iterdir()) == ["controller", "longvie.json",
                                                        "transformer", "vae"]
    assert not [p for p in folder.rglob("*") if p.suffix in (".bin", ".pt", ".pkl", ".ckpt")]
    meta = json.loads((folder / "longvie.json").read_text())
    assert meta["stage"] == "pretrain_control" and meta["base"] == "../smoke-base"
    made = meta["pretrain"]
    assert made["command"].startswith("longvie pretrain") and made["steps"] == 4
    assert made["corpus_version"].endswith(".dir") and made["base"]["dit_steps"] == 12
    assert made["train_seconds"] > 0 and made["corpus_clips"] == 6  # 3 videos x 2 clips
    config = compose(["profile=smoke", f"paths.root={pretrained}",
                      f"model.controlled={folder}"])
    check_controlled(str(folder), config.model)
    generator = load_generator(str(folder), config.model)
    assert generator.stage == "pretrain_control"
    # trained: the controller's zero-initialised outputs have moved, and so has the base
    assert any(p.abs().sum() > 0 for p in generator.transformer.controller.parameters())
    base = load_generator(str(pretrained / "weights" / "smoke-base"), config.model,
                          with_controller=False).transformer.base.state_dict()
    moved = generator.transformer.base.state_dict()
    assert any(not (moved[k] == v).all() for k, v in base.items())


def test_the_control_weights_ship_a_sharpened_decoder_over_the_base_encoder(pretrained):
    from safetensors import safe_open

    from longvie.training.latents import encoder_fingerprint
    from longvie.config import compose
    from longvie.model.folder import load_generator

    folder = pretrained / "weights" / "smoke-longvie"
    with safe_open(folder / "vae" / "diffusion_pytorch_model.safetensors", "pt") as handle:
        stored = {k: handle.get_tensor(k).dtype for k in handle.keys()}
    assert {v for k, v in stored.items() if k.startswith("decoder.")} == {torch.float16}
    assert {v for k, v in stored.items() if k.startswith("encoder.")} == {torch.float32}
    # the encoder is the base's byte for byte: every latent cache made with the base stays valid
    base_dir = pretrained / "weights" / "smoke-base"
    assert encoder_fingerprint(folder / "vae") == encoder_fingerprint(base_dir / "vae")
    config = compose(["profile=smoke", f"paths.root={pretrained}"])
    shipped = load_generator(str(folder), config.model).vae.state_dict()
    base = load_generator(str(base_dir), config.model, with_controller=False).vae.state_dict()
    assert {v.dtype for v in shipped.values()} == {torch.float32}  # loaded in full precision
    for key, value in base.items():
        if key.startswith(("encoder.", "quant_conv.")):
            assert torch.equal(shipped[key], value), key
    assert any(not torch.equal(shipped[k], base[k].half().float()) for k in base
               if k.startswith("decoder."))
    made = json.loads((folder / "longvie.json").read_text())["pretrain"]["decoder"]
    assert made["steps"] == 2 and made["weight"] == config.pretrain.control.decoder.weight
    assert {"psnr_db", "ssim", "sharpness_ratio"} <= set(made["heldout"])


def test_a_stage_started_from_the_control_weights_keeps_their_decoder(pretrained, tmp_path):
    from longvie.config import compose
    from longvie.model.folder import load_generator, save_stage_model

    folder = pretrained / "weights" / "smoke-longvie"
    config = compose(["profile=smoke", f"paths.root={pretrained}"])
    generator = load_generator(str(folder), config.model)
    saved = save_stage_model(tmp_path / "stage1", "stage1", generator.transformer, str(folder),
                             base_changed=False)
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        assert (saved / "vae" / name).read_bytes() == (folder / "vae" / name).read_bytes()
    base_text = pretrained / "weights" / "smoke-base" / "text_encoder" / "model.safetensors"
    assert (saved / "text_encoder" / "model.safetensors").read_bytes() == base_text.read_bytes()


def test_the_control_part_reports_the_controls_effect_against_both_baselines(pretrained):
    report = json.loads((pretrained / "reports" / "pretrain.json").read_text())
    assert report["parts"] == ["base", "control"]
    heldout = report["control"]["heldout"]
    assert set(heldout["loss"]) == {"with_controls", "controls_zeroed", "dense_only",
                                    "sparse_only", "no_controls"}
    assert heldout["loss_ratio_controls_vs_zeroed"] == pytest.approx(
        heldout["loss"]["with_controls"] / heldout["loss"]["controls_zeroed"], abs=1e-3)
    generated = heldout["generated"]
    assert {"static", "controls_only", "guidance_1", "guidance_3"} <= set(generated)
    assert generated["sampler"]["solver"] == "unipc"
    for guidance in ("guidance_1", "guidance_3"):
        figures = generated[guidance]
        assert len(figures["per_seed"]["ssim"]) == 2
        assert set(figures["vs_static"]) == set(figures["vs_controls_only"]) == {"ssim",
                                                                                 "psnr_db"}
    # the controls-only baseline follows the tracks: its EPE is below holding frame 0's
    assert generated["controls_only"]["track_epe_px"] < generated["static"]["track_epe_px"]
    for picture in report["control"]["pictures"].values():
        assert Path(picture).stat().st_size > 0


KILLED_CONTROL = textwrap.dedent(
    """
    import os, signal, sys
    import lightning as L
    from longvie.config import compose
    from longvie.synth.corpus import corpus_fingerprint
    from longvie.training.pretrain.control import pretrain_control

    class KillAt(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    config = compose(["profile=smoke", f"paths.root={sys.argv[1]}", *sys.argv[3:]])
    pretrain_control(config, corpus_fingerprint(config.synth, config.pretrain.corpus),
                     progress=False, log_mlflow=False, callbacks=(KillAt(),))
    """
)


def test_a_killed_control_run_resumes_to_the_weights_of_an_uninterrupted_one(pretrained,
                                                                             tmp_path):
    from safetensors.torch import load_file

    from longvie.config import compose
    from longvie.synth.corpus import corpus_fingerprint
    from longvie.training.pretrain.control import pretrain_control

    overrides = ["pretrain.control.steps=6", "pretrain.control.sample_seeds=[0]"]
    roots = []
    for name in ("killed", "straight"):
        root = copy_project(pretrained, tmp_path / name, ("data", "models", "weights"))
        shutil.rmtree(root / "models" / "pretrain_control" / "checkpoints")
        roots.append(root)
    done = subprocess.run([sys.executable, "-c", KILLED_CONTROL, str(roots[0]), "3",
                           *overrides], capture_output=True, text=True, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert (roots[0] / "models" / "pretrain_control" / "checkpoints" / "last.ckpt").is_file()

    def run(root: Path) -> dict:
        config = compose(["profile=smoke", f"paths.root={root}", *overrides])
        return pretrain_control(config, corpus_fingerprint(config.synth, config.pretrain.corpus),
                                progress=False, log_mlflow=False)

    assert run(roots[0])["steps"] == run(roots[1])["steps"] == 6
    files = [load_file(root / "weights" / "smoke-longvie" / part / name)
             for root in roots for part, name in (
                 ("controller", "model.safetensors"),
                 ("transformer", "diffusion_pytorch_model.safetensors"))]
    for killed, straight in ((files[0], files[2]), (files[1], files[3])):
        for key in killed:
            assert torch.equal(killed[key], straight[key]), key


def test_control_weights_that_are_missing_truncated_or_baseless_are_refused(pretrained,
                                                                            tmp_path):
    from longvie.config import compose
    from longvie.errors import LongvieError
    from longvie.model.pretrained import check_controlled

    model = compose(["profile=smoke"]).model
    weights = copy_project(pretrained, tmp_path / "copy", ("weights",)) / "weights"
    folder = weights / "smoke-longvie"
    with pytest.raises(LongvieError, match="model.controlled=.*no such folder"):
        check_controlled(str(weights / "nowhere"), model)
    controller = folder / "controller" / "model.safetensors"
    data = controller.read_bytes()
    controller.write_bytes(data[:-10])
    with pytest.raises(LongvieError, match="controller/model.safetensors: truncated"):
        check_controlled(str(folder), model)
    controller.write_bytes(data)
    with pytest.raises(LongvieError, match="controller: num_layers is 1 in the folder, 2"):
        check_controlled(str(folder), compose(["profile=smoke",
                                               "model.controller.num_layers=2"]).model)
    shutil.rmtree(weights / "smoke-base")
    with pytest.raises(LongvieError, match="smoke-base"):
        check_controlled(str(folder), model)


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
    from longvie.training.stages.run import train_stage

    (base_folder / "text_encoder" / "vocab.json").unlink()
    root = copy_project(curated, tmp_path / "root")
    config = compose(["profile=smoke", f"paths.root={root}", f"model.pretrained={base_folder}"])
    with pytest.raises(LongvieError, match="text_encoder/vocab.json: missing"):
        train_stage(config, "1", progress=False, log_mlflow=False)
    assert not (root / "models" / "stage1").exists()


def test_the_base_step_loads_registers_once_and_stage1_starts_from_it(curated, tmp_path,
                                                                      base_folder):
    import mlflow

    from longvie.steps import train_report
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


def test_stage1_starts_from_the_control_weights_the_profile_names(pretrained):
    from longvie.config import compose
    from longvie.errors import LongvieError
    from longvie.training.stages.run import start_source
    from longvie.training.stages.module import STAGES

    folder = pretrained / "weights" / "smoke-longvie"
    config = compose(["profile=smoke", f"paths.root={pretrained}", f"model.controlled={folder}"])
    assert start_source(config, STAGES["1"]) == str(folder)
    missing = compose(["profile=smoke", f"paths.root={pretrained}",
                       f"model.controlled={pretrained / 'nowhere'}"])
    with pytest.raises(LongvieError, match="model.controlled=.*no such folder"):
        start_source(missing, STAGES["1"])


def test_the_shipped_control_weights_decode_latents_of_the_base_encoder():
    """Stage 1 starts from weights/tiny-longvie but reads the latents the base step cached with
    weights/tiny-base: both VAEs must encode alike."""
    from longvie.training.latents import encoder_fingerprint

    weights = REPO / "weights"
    assert (encoder_fingerprint(weights / "tiny-longvie" / "vae")
            == encoder_fingerprint(weights / "tiny-base" / "vae"))
