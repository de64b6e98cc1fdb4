"""Depth models of the ``estimated`` controls: the trained UNet, transformers models, failures."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from longvie.config.schema import DepthModelConfig, DepthTrainingConfig
from longvie.controls.depth_models import load_depth_estimator
from longvie.controls.depth_net import DepthNet, DepthNetConfig, train_depth_net
from longvie.errors import LongvieError

FRAMES = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)


def _tiny_depth_anything(folder: Path, depth_type: str) -> Path:
    """A random Depth Anything (tiny DINOv2 backbone) and its processor, saved like a hub model."""
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessorPil,
    )

    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=14,
        image_size=56,
        out_features=["stage1", "stage2"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        reassemble_factors=[2, 1],
        neck_hidden_sizes=[8, 16],
        fusion_hidden_size=8,
        head_hidden_size=8,
        depth_estimation_type=depth_type,
        max_depth=10,
    )
    torch.manual_seed(0)
    model = DepthAnythingForDepthEstimation(config)
    if depth_type == "relative":
        # Random init sits at the head's ReLU kink (all ~0); lift it so the output has content.
        with torch.no_grad():
            model.head.conv3.bias.fill_(1.0)
    model.save_pretrained(folder)
    DPTImageProcessorPil(size={"height": 56, "width": 56}, keep_aspect_ratio=False).save_pretrained(
        folder
    )
    return folder


@pytest.fixture(scope="module")
def relative_model(tmp_path_factory) -> Path:
    return _tiny_depth_anything(tmp_path_factory.mktemp("depth_anything"), "relative")


@pytest.fixture(scope="module")
def metric_model(tmp_path_factory) -> Path:
    return _tiny_depth_anything(tmp_path_factory.mktemp("depth_anything_metric"), "metric")


def _transformers(model: Path, **overrides) -> DepthModelConfig:
    return DepthModelConfig(kind="transformers", model=str(model), **overrides)


def _valid_disparity(disparity: np.ndarray, shape: tuple[int, ...]) -> None:
    assert disparity.shape == shape and disparity.dtype == np.float32
    assert np.isfinite(disparity).all() and (disparity > 0).all()


def test_transformers_model_gives_disparity_at_input_resolution(relative_model):
    disparity = load_depth_estimator(_transformers(relative_model)).predict(FRAMES)
    _valid_disparity(disparity, (2, 64, 64))
    assert disparity.std() > 0, "the model's output should reach the caller, not a constant"
    wide = np.random.default_rng(1).integers(0, 256, (3, 48, 80, 3), dtype=np.uint8)
    _valid_disparity(load_depth_estimator(_transformers(relative_model)).predict(wide), (3, 48, 80))


def test_transformers_batches_do_not_change_the_result(relative_model):
    frames = np.random.default_rng(2).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    whole = load_depth_estimator(_transformers(relative_model, batch_size=16)).predict(frames)
    split = load_depth_estimator(_transformers(relative_model, batch_size=2)).predict(frames)
    np.testing.assert_allclose(split, whole, rtol=1e-4, atol=1e-6)


def test_metric_depth_output_is_inverted_to_disparity(metric_model):
    raw = load_depth_estimator(_transformers(metric_model, output="disparity")).predict(FRAMES)
    inverted = load_depth_estimator(_transformers(metric_model, output="depth")).predict(FRAMES)
    _valid_disparity(inverted, (2, 64, 64))
    # The metric head is sigmoid * max_depth: depth in (0, 10) so disparity above 1/10.
    assert inverted.min() > 0.1 - 1e-6
    np.testing.assert_allclose(raw * inverted, 1.0, rtol=1e-4)


def test_depth_net_round_trip_predicts_identically(tmp_path):
    torch.manual_seed(0)
    model = DepthNet(DepthNetConfig(channels=4, levels=2)).eval()
    model.save_pretrained(tmp_path / "net")
    assert json.loads((tmp_path / "net" / "config.json").read_text()) == {
        "model_type": "longvie-depthnet",
        "channels": 4,
        "levels": 2,
    }
    estimator = load_depth_estimator(DepthModelConfig(kind="longvie", model=str(tmp_path / "net")))
    disparity = estimator.predict(FRAMES)
    _valid_disparity(disparity, (2, 64, 64))
    with torch.inference_mode():
        direct = model(torch.from_numpy(FRAMES).permute(0, 3, 1, 2).float() / 255.0).numpy()
    np.testing.assert_array_equal(disparity, direct)


def test_depth_net_takes_any_size_and_behaves_the_same_in_train_and_eval():
    torch.manual_seed(0)
    model = DepthNet(DepthNetConfig(channels=4, levels=3))
    rgb = torch.rand(2, 3, 37, 50)
    with torch.no_grad():
        train_out = model.train()(rgb)
        eval_out = model.eval()(rgb)
    assert train_out.shape == (2, 37, 50) and (train_out > 0).all()
    torch.testing.assert_close(train_out, eval_out)


def test_missing_longvie_model_names_the_key_path_and_fix(tmp_path):
    missing = tmp_path / "no_model_here"
    with pytest.raises(LongvieError) as error:
        load_depth_estimator(DepthModelConfig(kind="longvie", model=str(missing)))
    message = str(error.value)
    assert "controls.depth.model" in message and str(missing) in message
    assert "longvie depth-estimator" in message


@pytest.mark.parametrize(
    ("files", "missing_part"),
    [
        ({"model.safetensors": b""}, "config.json"),
        ({"config.json": '{"model_type": "longvie-depthnet", "channels": 4}'}, "model.safetensors"),
        ({"config.json": '{"model_type": "dpt"}', "model.safetensors": b""}, "model_type"),
    ],
)
def test_incomplete_longvie_folder_says_what_is_missing(tmp_path, files, missing_part):
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    with pytest.raises(LongvieError, match="longvie depth-estimator") as error:
        DepthNet.from_pretrained(tmp_path)
    assert missing_part in str(error.value)


def test_uncached_hub_id_fails_quickly_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_id = "longvie-tests/no-such-depth-model"
    start = time.perf_counter()
    with pytest.raises(LongvieError) as error:
        load_depth_estimator(DepthModelConfig(kind="transformers", model=hub_id))
    assert time.perf_counter() - start < 10, "offline must not retry the network"
    assert "controls.depth.model" in str(error.value) and hub_id in str(error.value)


def _toy_scenes(count: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Coloured rectangles on a vertical grey ramp; disparity = exp(3 * brightness).

    Brightness (the largest channel) encodes nearness, so the disparity is a known smooth
    function of the image that a working trainer must recover.
    """
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.15, 0.45, size, dtype=np.float32)[:, None].repeat(size, 1)
    rgb = np.repeat(ramp[None, :, :, None], count, 0).repeat(3, -1)
    for image in rgb:
        for _ in range(rng.integers(1, 4)):
            h, w = rng.integers(size // 6, size // 2, 2)
            y, x = rng.integers(0, size - h), rng.integers(0, size - w)
            colour = rng.uniform(0.3, 1.0, 3)
            image[y : y + h, x : x + w] = colour * rng.uniform(0.55, 1.0) / colour.max()
    frames = (rgb * 255).round().astype(np.uint8)
    disparity = np.exp(3.0 * frames.max(-1) / 255.0).astype(np.float32)
    return frames, disparity


def test_training_learns_disparity_from_the_image():
    frames, disparity = _toy_scenes(256, 32, seed=0)
    held_frames, held_disparity = _toy_scenes(32, 32, seed=1)
    training = DepthTrainingConfig(
        steps=300, batch_size=8, learning_rate=5e-3, channels=8, levels=2, seed=0
    )
    model, history = train_depth_net(frames, disparity, training, progress=False)
    assert history["steps"] == 300 and len(history["loss"]) == 300 and history["seconds"] > 0
    assert not model.training
    with torch.inference_mode():
        rgb = torch.from_numpy(held_frames).permute(0, 3, 1, 2).float() / 255.0
        predicted = model(rgb).numpy()
    error = np.abs(np.log(predicted) - np.log(held_disparity)).mean()
    mean_guess = np.abs(np.log(disparity).mean() - np.log(held_disparity)).mean()
    assert error < 0.4 * mean_guess, f"held-out |log error| {error:.3f}, mean {mean_guess:.3f}"


def test_training_is_seeded_and_leaves_the_global_rng_alone():
    frames, disparity = _toy_scenes(16, 16, seed=3)
    training = DepthTrainingConfig(steps=5, batch_size=4, channels=4, levels=1, seed=7)
    torch.manual_seed(123)
    first = train_depth_net(frames, disparity, training, progress=False)[1]["loss"]
    after = torch.rand(1)
    torch.manual_seed(123)
    second = train_depth_net(frames, disparity, training, progress=False)[1]["loss"]
    assert first == second
    assert torch.equal(torch.rand(1), after)
