"""The Hydra tree: three profiles compose, and a bad override fails at once naming its key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from longvie.config import ConfigError, compose


def test_default_profile_is_tiny_with_paths_under_one_root(tmp_path):
    config = compose([f"paths.root={tmp_path}"])
    assert config.profile_name == "tiny"
    assert (config.video.fps, config.video.width, config.video.clip_frames) == (8, 64, 17)
    assert config.synth.train_videos >= 32 and config.synth.train_seconds >= 20
    assert config.synth.benchmark_videos >= 4 and config.synth.benchmark_seconds >= 60
    assert config.paths.raw == f"{tmp_path}/data/raw"
    assert config.paths.curated == f"{tmp_path}/data/curated"
    assert config.paths.reports == f"{tmp_path}/reports"


def test_each_path_can_be_overridden_alone(tmp_path):
    config = compose([f"paths.root={tmp_path}", "paths.raw=/videos"])
    assert config.paths.raw == "/videos" and config.paths.models == f"{tmp_path}/models"


def test_production_profile_has_the_paper_clip_geometry():
    video = compose(["profile=wan14b"]).video
    assert (video.fps, video.height, video.width, video.clip_frames) == (16, 352, 640, 81)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("curation.min_secondz=3", "curation.min_secondz"),
        ("video.fps=fast", "video.fps"),
        ("synth.train_videos=1.5", "synth.train_videos"),
        ("video.clip_frames=16", "video.clip_frames"),
        ("video.width=70", "video.width"),
        ("curation.clip_overlap=17", "curation.clip_overlap"),
        ("profile=huge", "profile/huge"),
        ("generation.solver=heun", "generation.solver"),
        ("model.sparse_control=splat", "model.sparse_control"),
        # tiny remembers frame 0 in its sparse control, which only frame colours can hold
        ("model.sparse_control=point_map", "generation.frame_memory"),
        ("pretrain.parts=[vae]", "pretrain.parts"),
        ("pretrain.control.control_dropout=1.0", "pretrain.control.control_dropout"),
    ],
)
def test_bad_overrides_fail_naming_the_key(override, named):
    with pytest.raises(ConfigError) as error:
        compose([override])
    assert named in str(error.value)


def test_the_transformer_channels_must_match_the_vaes_latent_channels():
    # tiny's base has 32 latent channels (in 68 = 2 x 32 + 4); Wan 2.1's layout has 16.
    assert compose([]).model.transformer.in_channels == 68
    wan21 = ["model.vae.z_dim=16", "model.transformer.in_channels=36",
             "model.transformer.out_channels=16"]
    assert compose(wan21).model.transformer.in_channels == 36
    with pytest.raises(ConfigError, match="in_channels=36 and out_channels=16"):
        compose(["model.vae.z_dim=16"])


def test_the_cli_rejects_a_bad_override_before_any_work(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "longvie", "curate", f"paths.root={tmp_path}", "video.fsp=4"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "video.fsp" in done.stderr and "Did you mean" in done.stderr
    assert not any(tmp_path.iterdir()), "nothing may be written before the config is valid"
