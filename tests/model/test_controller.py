"""The dual controller: interleaved half-copy initialiser, zero-init identity, the shared zero
projection, freezing, history tokens, and the production (Wan2.1-I2V-14B) shapes on meta."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.transformers.transformer_wan import WanTransformer3DModel

from longvie.model import controller as controller_module
from longvie.model.controller import (
    DualController,
    LongVieTransformer,
    history_rope,
    interleaved_half,
    split_block,
    unfreeze_base_self_attention,
)

TINY = dict(
    patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=16, in_channels=36,
    out_channels=16, text_dim=32, freq_dim=32, ffn_dim=128, num_layers=4, rope_max_seq_len=64,
)
K = 2
WIDTH, FFN = 64, 128
SHAPE = (2, 36, 3, 8, 8)  # B, C, F, h, w -> 3 * 4 * 4 = 48 clip tokens
CLIP_TOKENS, FRAME_TOKENS = 48, 16


def tiny_base(**overrides) -> WanTransformer3DModel:
    torch.manual_seed(0)
    return WanTransformer3DModel(**{**TINY, **overrides})


def build(base: WanTransformer3DModel, layers: int = K) -> LongVieTransformer:
    return LongVieTransformer(base, DualController(base, layers))


@pytest.fixture
def model() -> LongVieTransformer:
    return build(tiny_base())


def randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def inputs() -> dict:
    return {
        "hidden_states": randn(*SHAPE, seed=1),
        "timestep": torch.tensor([100.0, 700.0]),
        "encoder_hidden_states": randn(2, 6, 32, seed=2),
    }


def controls(seed: int) -> dict:
    return {"dense": randn(*SHAPE, seed=seed), "sparse": randn(*SHAPE, seed=seed + 1)}


def perturb(controller: DualController, *, inputs: bool = True, bias: bool = True) -> None:
    """Move the zero-initialised Linears away from zero, as training would."""
    linears = list(controller.zero_out)
    if inputs:
        linears += [controller.dense_in, controller.sparse_in]
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for linear in linears:
            linear.weight.copy_(0.2 * torch.randn(linear.weight.shape, generator=generator))
            if bias:
                linear.bias.copy_(0.2 * torch.randn(linear.bias.shape, generator=generator))


def base_output(base: WanTransformer3DModel, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return base(**inputs, return_dict=False)[0]


def run(model: LongVieTransformer, inputs: dict, **extra) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs, **extra)


# The initialiser


def test_half_blocks_are_interleaved_copies_of_the_base_blocks():
    base = tiny_base()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    controller = DualController(base, K)
    for layer in range(K):
        source = base.blocks[layer]
        halves = (controller.dense_blocks[layer], controller.sparse_blocks[layer])
        for parity, half in enumerate(halves):
            p = slice(parity, None, 2)
            assert torch.equal(half.attn1.to_q.weight, source.attn1.to_q.weight[p, p])
            assert torch.equal(half.attn1.to_q.bias, source.attn1.to_q.bias[p])
            assert torch.equal(half.attn2.to_k.weight, source.attn2.to_k.weight[p, p])
            assert torch.equal(half.attn1.to_out[0].weight, source.attn1.to_out[0].weight[p, p])
            assert torch.equal(half.ffn.net[0].proj.weight, source.ffn.net[0].proj.weight[p, p])
            assert torch.equal(half.ffn.net[0].proj.bias, source.ffn.net[0].proj.bias[p])
            assert torch.equal(half.ffn.net[2].weight, source.ffn.net[2].weight[p, p])
            assert torch.equal(half.scale_shift_table, source.scale_shift_table[:, :, p])
            assert torch.equal(half.attn1.norm_q.weight, source.attn1.norm_q.weight[p])
            assert torch.equal(half.norm2.weight, source.norm2.weight[p])
        dense, sparse = controller.dense_blocks[layer], controller.sparse_blocks[layer]
        assert not torch.equal(dense.attn1.to_q.weight, sparse.attn1.to_q.weight)
        assert not torch.equal(dense.scale_shift_table, sparse.scale_shift_table)
    for key, value in base.state_dict().items():
        assert torch.equal(value, before[key]), key
    base_storage = {p.untyped_storage().data_ptr() for p in base.parameters()}
    assert not base_storage & {p.untyped_storage().data_ptr() for p in controller.parameters()}


def test_every_half_parameter_is_the_parity_slice_with_halved_sizes():
    base = tiny_base()
    source = base.blocks[0]
    for parity in (0, 1):
        half = split_block(source, parity).state_dict()
        assert half.keys() == source.state_dict().keys()
        for key, value in source.state_dict().items():
            expected = tuple(n // 2 if n in (WIDTH, FFN) else n for n in value.shape)
            assert half[key].shape == expected, key
            assert torch.equal(half[key], interleaved_half(value, {WIDTH, FFN}, parity)), key


def test_half_block_sizes_and_config_dict(model):
    half = model.controller.dense_blocks[0]
    assert half.attn1.heads == 2 and half.attn1.to_q.out_features == 32
    assert half.ffn.net[0].proj.out_features == 64
    assert model.controller.config_dict() == {
        "num_layers": K, "width": WIDTH, "half_width": 32, "num_heads": 2, "head_dim": 16,
        "ffn_dim": 64, "cross_attn_norm": True, "eps": 1e-6, "added_kv_proj_dim": None,
    }


def test_context_and_time_linears_select_the_even_and_odd_features(model):
    controller = model.controller
    x = randn(2, 6, WIDTH, seed=5)
    with torch.no_grad():
        assert torch.equal(controller.dense_context(x), x[..., 0::2])
        assert torch.equal(controller.sparse_context(x), x[..., 1::2])
        assert torch.equal(controller.dense_time(x), x[..., 0::2])
        assert torch.equal(controller.sparse_time(x), x[..., 1::2])


# Zero initialisation


def test_fresh_controller_leaves_the_base_output_unchanged(model, inputs):
    expected = base_output(model.base, inputs)
    both = controls(10)
    assert torch.equal(run(model, inputs, **both), expected)
    assert torch.equal(run(model, inputs, dense=both["dense"]), expected)
    assert torch.equal(run(model, inputs, sparse=both["sparse"]), expected)
    assert torch.equal(run(model, inputs), expected)
    assert torch.equal(run(LongVieTransformer(model.base), inputs, **both), expected)


def test_trained_controller_changes_the_output_and_follows_the_controls(model, inputs):
    expected = base_output(model.base, inputs)
    perturb(model.controller)
    first = run(model, inputs, **controls(10))
    assert not torch.allclose(first, expected, atol=1e-4)
    assert not torch.allclose(run(model, inputs, **controls(20)), first, atol=1e-4)
    assert torch.equal(run(model, inputs), expected)  # no controls: the base alone


def test_dense_scale_zero_removes_the_dense_features(model, inputs):
    """Z's bias is a learnt constant, not a dense feature: keep it at zero here."""
    expected = base_output(model.base, inputs)
    perturb(model.controller, bias=False)
    dense = controls(10)["dense"]
    off = run(model, inputs, dense=dense, dense_scale=torch.zeros(2))
    assert torch.equal(off, expected)
    mixed = run(model, inputs, dense=dense, dense_scale=torch.tensor([0.0, 1.0]))
    assert torch.equal(mixed[0], expected[0])
    assert torch.equal(mixed[1], run(model, inputs, dense=dense)[1])
    assert not torch.allclose(mixed[1], expected[1], atol=1e-4)


# The shared zero projection and what trains


def test_one_zero_linear_per_layer_takes_the_sum_of_both_branches(model, inputs):
    controller = model.controller
    assert len(controller.zero_out) == K
    projections = [
        m for m in controller.modules()
        if isinstance(m, torch.nn.Linear) and (m.in_features, m.out_features) == (32, WIDTH)
        and not any(m is b for blocks in (controller.dense_blocks, controller.sparse_blocks)
                    for b in blocks.modules())
    ]
    assert len(projections) == K
    seen: dict[str, list] = {"z": [], "dense": [], "sparse": []}
    hooks = [
        controller.zero_out[0].register_forward_hook(lambda m, a, o: seen["z"].append(a[0])),
        controller.dense_blocks[0].register_forward_hook(lambda m, a, o: seen["dense"].append(o)),
        controller.sparse_blocks[0].register_forward_hook(
            lambda m, a, o: seen["sparse"].append(o)
        ),
    ]
    run(model, inputs, **controls(10))
    for hook in hooks:
        hook.remove()
    assert [len(v) for v in seen.values()] == [1, 1, 1]
    assert torch.equal(seen["z"][0], seen["dense"][0] + seen["sparse"][0])


def branch_grads(controller: DualController) -> list[torch.Tensor | None]:
    modules = [controller.dense_blocks, controller.sparse_blocks, controller.dense_in,
               controller.sparse_in]
    return [p.grad for m in modules for p in m.parameters()]


def test_branches_get_gradients_only_once_z_is_nonzero(model, inputs):
    assert not any(p.requires_grad for p in model.base.parameters())
    assert all(p.requires_grad for p in model.controller.parameters())
    model(**inputs, **controls(10)).square().mean().backward()
    assert all(g is None or not g.any() for g in branch_grads(model.controller))
    assert model.controller.zero_out[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.base.parameters())

    model.controller.zero_grad()
    perturb(model.controller, inputs=False)
    model(**inputs, **controls(10)).square().mean().backward()
    for module in (model.controller.dense_blocks[0], model.controller.sparse_blocks[1],
                   model.controller.dense_in, model.controller.sparse_in):
        assert any(p.grad is not None and p.grad.any() for p in module.parameters())
    assert all(p.grad is None for p in model.base.parameters())


def test_unfreeze_base_self_attention_trains_exactly_attn1(model):
    unfreeze_base_self_attention(model)
    trainable = {n for n, p in model.base.named_parameters() if p.requires_grad}
    attn1 = {n for n, _ in model.base.named_parameters() if ".attn1." in n}
    assert trainable == attn1
    assert len(attn1) == TINY["num_layers"] * 10  # q k v out (weight, bias) + norm_q, norm_k


def test_gradient_checkpointing_gives_the_same_gradients(model, inputs, monkeypatch):
    perturb(model.controller)

    def grads():
        model.controller.zero_grad()
        model(**inputs, **controls(10)).square().mean().backward()
        return [p.grad.clone() for p in model.controller.parameters()]

    plain = grads()
    calls = []
    original = controller_module.checkpoint
    monkeypatch.setattr(controller_module, "checkpoint",
                        lambda *a, **k: calls.append(k) or original(*a, **k))
    model.base.enable_gradient_checkpointing()
    checkpointed = grads()
    assert len(calls) == TINY["num_layers"] + 2 * K
    assert all(call == {"use_reentrant": False} for call in calls)
    for a, b in zip(plain, checkpointed, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# History context


def test_history_rope_shifts_the_clip_frame_positions():
    rope = tiny_base().rope
    history_frames, clip = 2, torch.zeros(SHAPE)
    cos, sin = history_rope(rope, history_frames, clip)
    clip_cos, clip_sin = rope(clip)
    history_tokens = history_frames * FRAME_TOKENS
    assert cos.shape[1] == history_tokens + CLIP_TOKENS
    history_cos, history_sin = rope(torch.zeros(1, 36, history_frames, 8, 8))
    pairs = (
        (cos, clip_cos, history_cos, rope.freqs_cos),
        (sin, clip_sin, history_sin, rope.freqs_sin),
    )
    for joint, alone, history, table in pairs:
        expected = alone.clone()
        for frame in range(SHAPE[2]):
            rows = slice(frame * FRAME_TOKENS, (frame + 1) * FRAME_TOKENS)
            expected[:, rows, :, : rope.t_dim] = table[history_frames + frame, : rope.t_dim]
        assert torch.equal(joint[:, history_tokens:], expected)
        assert not torch.equal(joint[:, history_tokens:], alone)
        assert torch.equal(joint[:, :history_tokens], history)


def test_history_tokens_are_prepended_and_dropped_before_the_head(model, inputs):
    history = randn(2, 36, 2, 8, 8, seed=30)
    seen = {}
    hooks = [
        model.base.blocks[0].register_forward_pre_hook(
            lambda m, a: seen.update(block=(a[0], a[3]))
        ),
        model.controller.dense_blocks[0].register_forward_pre_hook(
            lambda m, a: seen.update(dense=a[3])
        ),
        model.base.blocks[-1].register_forward_hook(lambda m, a, o: seen.update(last=o)),
        model.base.norm_out.register_forward_pre_hook(lambda m, a: seen.update(head=a[0])),
    ]
    perturb(model.controller)
    out = run(model, inputs, **controls(10), history=history)
    for hook in hooks:
        hook.remove()
    assert out.shape == (2, 16, 3, 8, 8)
    tokens, rope = seen["block"]
    with torch.no_grad():
        embedded = [model.base.patch_embedding(v).flatten(2).transpose(1, 2)
                    for v in (history, inputs["hidden_states"])]
    assert torch.equal(tokens, torch.cat(embedded, dim=1))  # history first, then the clip
    joint = history_rope(model.base.rope, 2, inputs["hidden_states"])
    assert all(torch.equal(a, b) for a, b in zip(rope, joint, strict=True))
    clip_rope = model.base.rope(inputs["hidden_states"])
    assert all(torch.equal(a, b) for a, b in zip(seen["dense"], clip_rope, strict=True))
    assert seen["last"].shape == (2, 2 * FRAME_TOKENS + CLIP_TOKENS, WIDTH)
    assert torch.equal(seen["head"], seen["last"][:, 2 * FRAME_TOKENS :])  # the clip's tokens
    assert not torch.allclose(out, run(model, inputs, **controls(10)), atol=1e-4)


def test_no_control_residual_reaches_the_history_tokens(model, inputs):
    perturb(model.controller)
    history = randn(2, 36, 2, 8, 8, seed=30)
    history_tokens = 2 * FRAME_TOKENS

    def block1_input_and_output(control_seed: int):
        seen = {}
        pre = model.base.blocks[1].register_forward_pre_hook(
            lambda m, a: seen.update({"in": a[0]})
        )
        post = model.base.blocks[0].register_forward_hook(
            lambda m, a, o: seen.update(base0=o)
        )
        z = model.controller.zero_out[0].register_forward_hook(
            lambda m, a, o: seen.update(z=o)
        )
        out = run(model, inputs, **controls(control_seed), history=history)
        for hook in (pre, post, z):
            hook.remove()
        return seen, out

    first, out_first = block1_input_and_output(10)
    second, out_second = block1_input_and_output(20)
    assert first["z"].shape == (2, CLIP_TOKENS, WIDTH)
    for seen in (first, second):
        assert torch.equal(seen["in"][:, :history_tokens], seen["base0"][:, :history_tokens])
        assert torch.equal(seen["in"][:, history_tokens:],
                           seen["base0"][:, history_tokens:] + seen["z"])
    assert torch.equal(first["in"][:, :history_tokens], second["in"][:, :history_tokens])
    assert not torch.allclose(first["in"][:, history_tokens:], second["in"][:, history_tokens:])
    assert not torch.allclose(out_first, out_second, atol=1e-4)


def test_history_tokens_are_modulated_as_clean_frames(model, inputs):
    history = randn(2, 36, 2, 8, 8, seed=31)
    seen = {}
    hook = model.base.blocks[0].register_forward_pre_hook(lambda m, a: seen.update(time=a[2]))
    run(model, inputs, history=history)
    hook.remove()
    time = seen["time"]
    history_tokens = 2 * FRAME_TOKENS
    assert time.shape == (2, history_tokens + CLIP_TOKENS, 6, model.base.config.num_attention_heads
                          * model.base.config.attention_head_dim)
    with torch.no_grad():
        _, at_sample, _ = model._conditions(inputs["timestep"], inputs["encoder_hidden_states"],
                                            None)
        _, at_zero, _ = model._conditions(torch.zeros(2), inputs["encoder_hidden_states"], None)
    assert torch.equal(time[:, :history_tokens], at_zero.unsqueeze(1).expand_as(
        time[:, :history_tokens]))
    assert torch.equal(time[:, history_tokens:], at_sample.unsqueeze(1).expand_as(
        time[:, history_tokens:]))
    assert not torch.equal(at_zero, at_sample)


def test_history_none_behaves_as_without_history(model, inputs):
    perturb(model.controller)
    both = controls(10)
    assert torch.equal(run(model, inputs, **both, history=None), run(model, inputs, **both))
    assert torch.equal(run(model, inputs, history=None), base_output(model.base, inputs))


def test_bfloat16_base_with_fp32_norms_as_from_pretrained_loads_it(inputs):
    base = tiny_base().to(torch.bfloat16)
    for name, parameter in base.named_parameters():
        if set(name.split(".")) & set(base._keep_in_fp32_modules):
            parameter.data = parameter.data.float()
    model = build(base)
    assert model.controller.dense_blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    assert model.controller.dense_blocks[0].scale_shift_table.dtype == torch.float32
    assert model.controller.zero_out[0].weight.dtype == torch.bfloat16
    half = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in inputs.items()}
    half["timestep"] = inputs["timestep"]
    both = {k: v.to(torch.bfloat16) for k, v in controls(10).items()}
    assert torch.equal(run(model, half, **both), base_output(base, half))
    perturb(model.controller)
    assert run(model, half, **both).dtype == torch.bfloat16


# Image embeddings (I2V's added key/value projections)


def test_image_context_goes_through_the_half_added_kv_projections():
    base = tiny_base(image_dim=8, added_kv_proj_dim=WIDTH)
    model = build(base)
    half, source = model.controller.sparse_blocks[1].attn2, base.blocks[1].attn2
    assert half.added_kv_proj_dim == 32
    assert torch.equal(half.add_k_proj.weight, source.add_k_proj.weight[1::2, 1::2])
    assert torch.equal(half.norm_added_k.weight, source.norm_added_k.weight[1::2])
    inputs = {  # WanAttnProcessor takes the last 512 context tokens as the text
        "hidden_states": randn(*SHAPE, seed=1),
        "timestep": torch.tensor([100.0, 700.0]),
        "encoder_hidden_states": randn(2, 512, 32, seed=2),
        "encoder_hidden_states_image": randn(2, 4, 8, seed=3),
    }
    expected = base_output(base, inputs)
    assert torch.equal(run(model, inputs, **controls(10)), expected)
    perturb(model.controller)
    assert not torch.allclose(run(model, inputs, **controls(10)), expected, atol=1e-4)


def test_image_kv_width_other_than_the_model_width_is_refused():
    base = tiny_base(added_kv_proj_dim=48)
    with pytest.raises(ValueError, match="added_kv_proj_dim=48"):
        DualController(base, K)


# Production shapes (Wan2.1-I2V-14B) on the meta device


WAN21_I2V_14B = dict(
    patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=36,
    out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, image_dim=1280,
    added_kv_proj_dim=5120, cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
    rope_max_seq_len=1024,
)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_production_shapes_on_meta():
    with torch.device("meta"):
        base = WanTransformer3DModel(**WAN21_I2V_14B)
        controller = DualController(base, 12)
    half = controller.dense_blocks[0]
    assert half.scale_shift_table.shape == (1, 6, 2560)
    assert half.attn1.heads == 20 and half.attn1.to_q.out_features == 20 * 128
    assert half.ffn.net[0].proj.out_features == 6912
    assert half.attn2.add_k_proj.in_features == 2560
    # "14B" is the name; with the I2V image key/value projections the DiT holds 16.39B.
    assert count(base) == 16_394_878_784
    assert count(controller) == 2_659_857_408  # 24 half blocks 2.42B + 9 Linears 0.24B
    assert count(half) * 4 == pytest.approx(count(base.blocks[0]), rel=0.001)
    model = LongVieTransformer(base, controller)
    latent = torch.empty(1, 36, 21, 44, 80, device="meta")  # 81 frames at 352 x 640
    with torch.no_grad():
        out = model(
            latent,
            torch.empty(1, device="meta"),
            torch.empty(1, 512, 4096, device="meta"),
            torch.empty(1, 257, 1280, device="meta"),
            dense=torch.empty_like(latent),
            sparse=torch.empty_like(latent),
            history=torch.empty(1, 36, 2, 44, 80, device="meta"),
            dense_scale=torch.empty(1, device="meta"),
        )
    assert out.shape == (1, 16, 21, 44, 80) and out.device.type == "meta"
