"""The Wan I2V backbone from diffusers, its 36-channel input, the latent codec and the caption
encoders: built from config, loaded through ``from_pretrained`` from tiny saved folders, and the
production (wan14b) sizes checked on the meta device."""

from __future__ import annotations

import pytest
import torch

from longvie.config import compose
from longvie.errors import LongvieError
from longvie.model.backbone import (
    LatentCodec,
    build_transformer,
    build_vae,
    i2v_input,
    latent_frames,
    transformer_kwargs,
    unconditioned_input,
)
from longvie.model.text import CaptionTextEncoder, CaptionVocabulary, UMT5TextEncoder


@pytest.fixture(scope="module")
def smoke_model():
    return compose(["profile=smoke"]).model


def test_the_i2v_input_is_noisy_then_mask_then_condition():
    noisy, condition = torch.randn(2, 16, 5, 4, 4), torch.randn(2, 16, 5, 4, 4)
    joined = i2v_input(noisy, condition)
    assert joined.shape == (2, 36, 5, 4, 4)
    assert torch.equal(joined[:, :16], noisy) and torch.equal(joined[:, 20:], condition)
    assert torch.all(joined[:, 16:20, 0] == 1) and torch.all(joined[:, 16:20, 1:] == 0)
    with pytest.raises(ValueError):
        i2v_input(noisy, condition[:, :8])


def test_the_i2v_input_follows_the_vaes_latent_channels():
    # Wan 2.2's VAE has 48 channels, the tiny base's 32: [noisy z | mask 4 | condition z].
    noisy, condition = torch.randn(1, 32, 2, 4, 4), torch.randn(1, 32, 2, 4, 4)
    joined = i2v_input(noisy, condition)
    assert joined.shape == (1, 68, 2, 4, 4)
    assert torch.equal(joined[:, 36:], condition)
    assert unconditioned_input(noisy).shape == (1, 68, 2, 4, 4)


def test_pixel_frames_must_be_4k_plus_1():
    assert [latent_frames(n) for n in (1, 5, 17, 81)] == [1, 2, 5, 21]
    with pytest.raises(ValueError, match="4k\\+1"):
        latent_frames(16)


def test_codec_shapes_and_the_two_condition_encodings(smoke_model):
    torch.manual_seed(0)
    codec = LatentCodec(build_vae(smoke_model).eval())
    video = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    with torch.no_grad():
        latents = codec.encode(video)
        assert latents.shape == (1, 16, 3, 4, 4)
        assert codec.decode(latents).shape == (1, 3, 9, 32, 32)
        first = codec.condition(video[:, :, 0], 9, "first_frame")
        joint = codec.condition(video[:, :, 0], 9, "joint")
    assert first.shape == joint.shape == (1, 16, 3, 4, 4)
    assert torch.all(first[:, :, 1:] == 0) and torch.any(joint[:, :, 1:] != 0)
    # The causal VAE encodes frame 0 on its own: both encodings agree on the first latent.
    assert torch.allclose(first[:, :, 0], joint[:, :, 0], atol=1e-5)


def test_pretrained_parts_load_through_from_pretrained(smoke_model, tmp_path):
    torch.manual_seed(0)
    transformer, vae = build_transformer(smoke_model), build_vae(smoke_model)
    transformer.save_pretrained(tmp_path / "transformer")
    vae.save_pretrained(tmp_path / "vae")
    smoke_model.pretrained = str(tmp_path)
    loaded = build_transformer(smoke_model)
    inputs = (torch.randn(1, 36, 3, 4, 4), torch.tensor([500]), torch.randn(1, 5, 32))
    with torch.no_grad():
        assert torch.allclose(transformer(*inputs).sample, loaded(*inputs).sample, atol=1e-6)
    assert build_vae(smoke_model).config.base_dim == vae.config.base_dim


def test_missing_pretrained_weights_name_the_key(smoke_model, tmp_path):
    smoke_model.pretrained = str(tmp_path / "nowhere")
    with pytest.raises(LongvieError, match="model.pretrained"):
        build_transformer(smoke_model)


def test_wan14b_transformer_has_the_production_size_on_the_meta_device():
    model = compose(["profile=wan14b"]).model
    from diffusers import WanTransformer3DModel

    with torch.device("meta"):
        transformer = WanTransformer3DModel(**transformer_kwargs(model))
    parameters = sum(p.numel() for p in transformer.parameters())
    assert 13.5e9 < parameters < 17e9, parameters
    assert len(transformer.blocks) == 40
    assert transformer.patch_embedding.in_channels == 36
    assert transformer.blocks[0].attn1.to_q.weight.shape == (5120, 5120)
    assert transformer.blocks[0].ffn.net[0].proj.weight.shape == (13824, 5120)


# --- caption encoders ------------------------------------------------------------------------


CAPTIONS = ["a red box spinning", "a blue sphere moving in a circle", "a red sphere"]


def test_the_vocabulary_is_built_from_captions_deterministically():
    vocabulary = CaptionVocabulary.build(CAPTIONS)
    assert vocabulary.tokens[:2] == ["[pad]", "[unk]"]
    assert vocabulary.tokens[2:5] == ["a", "red", "sphere"]  # most frequent first
    assert CaptionVocabulary.build(reversed(CAPTIONS)).tokens == vocabulary.tokens
    ids = vocabulary.ids(["A red dragon"], max_tokens=5)
    assert ids.tolist() == [[2, 3, 1, 0, 0]]


def test_caption_encoder_zeroes_padding_and_round_trips(tmp_path):
    torch.manual_seed(0)
    encoder = CaptionTextEncoder(CaptionVocabulary.build(CAPTIONS), 16, 8, 1, 2).eval()
    with torch.no_grad():
        states = encoder.encode(CAPTIONS)
    assert states.shape == (3, 8, 16)
    assert torch.all(states[0, 4:] == 0) and torch.all(states[0, :4].abs().sum(-1) > 0)
    encoder.save_pretrained(tmp_path / "text")
    loaded = CaptionTextEncoder.from_pretrained(tmp_path / "text")
    with torch.no_grad():
        assert torch.equal(loaded.encode(CAPTIONS), states)
    with pytest.raises(LongvieError, match="lacks"):
        CaptionTextEncoder.from_pretrained(tmp_path / "missing")


def test_umt5_encoder_loads_offline_from_a_tiny_saved_folder(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "a": 3, "red": 4, "box": 5}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>",
                                        eos_token="</s>", unk_token="<unk>")
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    torch.manual_seed(0)
    config = UMT5Config(vocab_size=8, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2)
    UMT5EncoderModel(config).save_pretrained(tmp_path / "text_encoder")

    encoder = UMT5TextEncoder(str(tmp_path), max_tokens=6)
    states = encoder.encode(["a red box", "box"])

    assert states.shape == (2, 6, 16)
    assert torch.all(states[0, 3:] == 0) and torch.all(states[1, 1:] == 0)
    assert torch.all(states[0, :3].abs().sum(-1) > 0)
