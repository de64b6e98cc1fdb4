"""LongVie 2's dual controller on top of the diffusers Wan image-to-video DiT.

The first K base blocks are replicated and each copy is split along the feature axis into a dense
(depth video) and a sparse (point-map video) half-width ``WanTransformerBlock``. Each branch sees
only its own control tokens: the control video in the 36-channel I2V layout, patchified by the
frozen base ``patch_embedding`` (shared, not copied) and a zero-initialised Linear. After base
block i < K the clip tokens receive ``Z_i(dense_scale * dense_i + sparse_i)``, with ONE zero-
initialised ``Z_i`` shared by both branches (the paper found shared better than separate).
``Z_i`` is a plain Linear with a (zero-initialised) bias: once trained, that bias is a per-layer
constant added whenever a control is given, so ``dense_scale = 0`` removes the dense features,
not the bias.

Initialisation (the public release ships none): even feature indices of the base block go to the
dense half, odd ones to the sparse half, on every axis whose size is the model width or the FFN
width. The halves are plain copies, not rescaled: the zero-initialised ``Z_i`` already makes the
controller a no-op at step 0, so no scale has to be preserved, and an unscaled copy keeps the
weight statistics the pretrained layers (LayerNorm, RMSNorm, adaLN tables) were trained with.
The split keeps neither the base heads nor RoPE's rotation pairs intact (both interleave with
stride 2); it is a warm start from pretrained statistics, not an exact sub-network.

Text context and timestep modulation reach the half blocks through a Linear(width -> width/2)
per branch, initialised as the even/odd selection matrix, so an unchanged initial half block
sees exactly the half-copied inputs. Half blocks keep head_dim, so the base rope is reused.

History context (stage 3): history latents are patchified by the base patch embedding and
prepended; rotary frame positions run history first (0..F_h-1), then the clip (F_h..F_h+F-1).
The control branches keep the clip's own rope (positions from 0). Their attention is among
control tokens only and RoPE scores depend on position differences only, so shifting every
control token by F_h would change nothing but rounding; the clip-alone rope keeps the branches
identical with and without history. History tokens get no control residual and are dropped
before the output head. They are modulated as clean frames (timestep 0) while the clip's tokens
get the sample's timestep, through the per-token modulation Wan 2.2's blocks accept (its TI2V
model treats its clean conditioning frame the same way): the base's adaLN tables were trained to
read a token's noise level from its modulation, and history tokens are not noisy. With one
timestep for all tokens a 500-step stage 3 on tiny could not make use of the history.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple

import torch
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import (
    WanTransformer3DModel,
    WanTransformerBlock,
)
from torch import nn
from torch.utils.checkpoint import checkpoint

DENSE, SPARSE = 0, 1  # the parity of the feature indices each branch copies


def interleaved_half(tensor: torch.Tensor, sizes: Collection[int], parity: int) -> torch.Tensor:
    """Every ``parity``-th feature (0: even, 1: odd) along each axis whose length is in ``sizes``.

    Returns a contiguous copy, never a view, so the source parameter stays untouched.
    """
    index = tuple(slice(parity, None, 2) if n in sizes else slice(None) for n in tensor.shape)
    return tensor[index].clone(memory_format=torch.contiguous_format)


def block_dims(block: WanTransformerBlock) -> dict:
    """The constructor arguments of a ``WanTransformerBlock``, read back from its modules."""
    return {
        "dim": block.scale_shift_table.shape[-1],
        "ffn_dim": block.ffn.net[0].proj.out_features,
        "num_heads": block.attn1.heads,
        "qk_norm": "rms_norm_across_heads",  # the only q/k norm WanAttention builds
        "cross_attn_norm": isinstance(block.norm2, FP32LayerNorm),
        "eps": block.norm1.eps,
        "added_kv_proj_dim": block.attn2.added_kv_proj_dim,
    }


def half_dims(dims: dict) -> dict:
    """Constructor arguments of the half-width block: dim, FFN, heads and image-kv input halved."""
    dim, ffn_dim, heads = dims["dim"], dims["ffn_dim"], dims["num_heads"]
    if dim % 2 or ffn_dim % 2 or heads % 2:
        raise ValueError(f"cannot halve width {dim}, FFN {ffn_dim}, {heads} heads: need even sizes")
    added = dims["added_kv_proj_dim"]
    if added is not None and added != dim:
        # The image context goes through the same width -> width/2 context Linear as the text,
        # so the half block's image key/value input is width/2 only when the base's is the width.
        raise ValueError(
            f"added_kv_proj_dim={added} differs from the block width {dim}: the controller "
            "projects image context with the width -> width/2 context Linear and cannot halve it"
        )
    return {
        **dims,
        "dim": dim // 2,
        "ffn_dim": ffn_dim // 2,
        "num_heads": heads // 2,
        "added_kv_proj_dim": None if added is None else added // 2,
    }


def split_block(block: WanTransformerBlock, parity: int) -> WanTransformerBlock:
    """A half-width copy of ``block``: its even (parity 0) or odd (parity 1) features.

    Built on the meta device and filled by assignment, so a 14B base on meta yields meta halves
    and a real base allocates only the half block, in the base's dtype and device.
    """
    if getattr(block.attn1, "fused_projections", False) or getattr(
        block.attn2, "fused_projections", False
    ):
        raise ValueError("unfuse_qkv_projections() the base before building the controller")
    dims = block_dims(block)
    with torch.device("meta"):
        half = WanTransformerBlock(**half_dims(dims))
    sizes = {dims["dim"], dims["ffn_dim"]}
    with torch.no_grad():
        state = {k: interleaved_half(v, sizes, parity) for k, v in block.state_dict().items()}
    half.load_state_dict(state, strict=True, assign=True)
    return half


def selection_linear(width: int, parity: int, like: torch.Tensor) -> nn.Linear:
    """Linear(width -> width/2) that picks the even or odd features: half-copies its input."""
    linear = nn.Linear(width, width // 2, device=like.device, dtype=like.dtype)
    with torch.no_grad():
        linear.weight.copy_(torch.eye(width, device=like.device, dtype=like.dtype)[parity::2])
        linear.bias.zero_()
    return linear


def zero_linear(in_features: int, out_features: int, like: torch.Tensor) -> nn.Linear:
    """A Linear whose weight and bias start at zero, so its output starts at exactly zero."""
    linear = nn.Linear(in_features, out_features, device=like.device, dtype=like.dtype)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


class DualController(nn.Module):
    """The dense and sparse half-width branches for the first ``num_layers`` base blocks."""

    def __init__(self, base: WanTransformer3DModel, num_layers: int):
        super().__init__()
        if not 0 < num_layers <= len(base.blocks):
            raise ValueError(f"num_layers={num_layers}: the base has {len(base.blocks)} blocks")
        width = base.blocks[0].scale_shift_table.shape[-1]
        # A Linear weight, not the table: from_pretrained keeps norms and tables in fp32.
        like = base.blocks[0].attn1.to_q.weight
        self.num_layers = num_layers
        self.width = width
        self.dense_blocks = nn.ModuleList(split_block(b, DENSE) for b in base.blocks[:num_layers])
        self.sparse_blocks = nn.ModuleList(split_block(b, SPARSE) for b in base.blocks[:num_layers])
        self.dense_in = zero_linear(width, width // 2, like)
        self.sparse_in = zero_linear(width, width // 2, like)
        self.dense_context = selection_linear(width, DENSE, like)
        self.sparse_context = selection_linear(width, SPARSE, like)
        self.dense_time = selection_linear(width, DENSE, like)
        self.sparse_time = selection_linear(width, SPARSE, like)
        self.zero_out = nn.ModuleList(
            zero_linear(width // 2, width, like) for _ in range(num_layers)
        )

    def config_dict(self) -> dict:
        """Sizes for reconstruction: ``DualController(base, num_layers)`` then load the state."""
        half = block_dims(self.dense_blocks[0])
        return {
            "num_layers": self.num_layers,
            "width": self.width,
            "half_width": half["dim"],
            "num_heads": half["num_heads"],
            "head_dim": half["dim"] // half["num_heads"],
            "ffn_dim": half["ffn_dim"],
            "cross_attn_norm": half["cross_attn_norm"],
            "eps": half["eps"],
            "added_kv_proj_dim": half["added_kv_proj_dim"],
        }

    def branch(self, parity: int) -> tuple[nn.ModuleList, nn.Linear, nn.Linear, nn.Linear]:
        """(blocks, control input, context, time) Linear modules of the dense or sparse branch."""
        if parity == DENSE:
            return self.dense_blocks, self.dense_in, self.dense_context, self.dense_time
        return self.sparse_blocks, self.sparse_in, self.sparse_context, self.sparse_time

    def residual(
        self,
        layer: int,
        dense: torch.Tensor | None,
        sparse: torch.Tensor | None,
        dense_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``Z_layer(dense_scale * dense + sparse)``: one shared projection for both branches."""
        if dense is not None and dense_scale is not None:
            dense = dense * dense_scale.to(dense.dtype).view(-1, 1, 1)
        features = dense if sparse is None else sparse if dense is None else dense + sparse
        return self.zero_out[layer](features)


def freeze_base(model: LongVieTransformer) -> None:
    """The base DiT takes no gradient (stages 1 and 2 train the controller only)."""
    model.base.requires_grad_(False)


def unfreeze_base_self_attention(model: LongVieTransformer) -> None:
    """Stage 3: the base's self-attention (``attn1`` of every block) trains, the rest stays."""
    freeze_base(model)
    for block in model.base.blocks:
        block.attn1.requires_grad_(True)


def history_rope(
    rope: nn.Module, history_frames: int, clip: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rope of the joint (history + clip) frame grid: history frames first, then the clip.

    ``clip`` is (B, C, F, h, w); the result covers ``history_frames + F`` frames, so the clip's
    tokens, which follow the history tokens, get frame positions shifted by ``history_frames``.
    Only the shape of the probe matters to the rope.
    """
    _, _, frames, height, width = clip.shape
    probe = clip.new_empty((1, 0, history_frames + frames, height, width))
    return rope(probe)


def add_to_clip(tokens: torch.Tensor, residual: torch.Tensor, history_tokens: int) -> torch.Tensor:
    """``tokens`` with ``residual`` added to the clip tokens only (history tokens come first)."""
    if history_tokens == 0:
        return tokens + residual
    return torch.cat([tokens[:, :history_tokens], tokens[:, history_tokens:] + residual], dim=1)


class Branch(NamedTuple):
    """One control branch during a forward: its half blocks and current half-width inputs."""

    blocks: nn.ModuleList
    tokens: torch.Tensor  # (B, clip tokens, width/2)
    context: torch.Tensor  # (B, [257 +] L, width/2)
    time: torch.Tensor  # (B, 6, width/2)


class LongVieTransformer(nn.Module):
    """The Wan I2V DiT with the dual controller's residuals and optional history tokens."""

    def __init__(
        self,
        base: WanTransformer3DModel,
        controller: DualController | None = None,
        frozen_base: bool = True,
    ):
        super().__init__()
        self.base = base
        self.controller = controller
        if frozen_base:
            freeze_base(self)

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_hidden_states_image: torch.Tensor | None = None,
        dense: torch.Tensor | None = None,
        sparse: torch.Tensor | None = None,
        history: torch.Tensor | None = None,
        dense_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, 36, F, h, w) input and controls -> (B, 16, F, h, w) flow prediction of the clip.

        Replicates ``WanTransformer3DModel.forward`` (Wan 2.1 path, timestep (B,)); with no
        controller or no controls and no history it computes exactly the base's output.
        ``dense``/``sparse``: control videos in the input's 36-channel layout; either may be None.
        ``history``: (B, 36, F_h, h, w) latents prepended as context tokens, dropped at the end.
        ``dense_scale``: (B,) factor on the dense branch's output before ``Z_i`` (stage-1
        feature degradation); the branch itself carries its unscaled features to the next layer.
        """
        self._check_inputs(hidden_states, timestep, dense, sparse, history)
        base = self.base
        clip_rope = base.rope(hidden_states)
        tokens = self._patchify(hidden_states)
        history_tokens, rope = 0, clip_rope
        if history is not None:
            history_embedded = self._patchify(history)
            history_tokens = history_embedded.shape[1]
            tokens = torch.cat([history_embedded, tokens], dim=1)
            rope = history_rope(base.rope, history.shape[2], hidden_states)

        temb, timestep_proj, context = self._conditions(
            timestep, encoder_hidden_states, encoder_hidden_states_image
        )
        branches = self._branch_states(dense, sparse, context, timestep_proj)
        block_time = timestep_proj
        if history_tokens:
            block_time = self._token_times(timestep_proj, history_tokens, tokens.shape[1],
                                           encoder_hidden_states, encoder_hidden_states_image)
        for layer, block in enumerate(base.blocks):
            tokens = self._run(block, tokens, context, block_time, rope)
            if branches and layer < self.controller.num_layers:
                residual = self._control_residual(layer, branches, clip_rope, dense_scale)
                tokens = add_to_clip(tokens, residual, history_tokens)
        return self._head(tokens[:, history_tokens:], temb, hidden_states.shape)

    def _token_times(self, timestep_proj, history_tokens: int, total_tokens: int,
                     encoder_hidden_states, encoder_hidden_states_image) -> torch.Tensor:
        """(B, tokens, 6, width) modulation: timestep 0 for the clean history tokens, the
        sample's timestep for the clip's (the per-token form Wan 2.2's blocks accept)."""
        batch = timestep_proj.shape[0]
        zero = torch.zeros(batch, device=timestep_proj.device)
        _, clean, _ = self._conditions(zero, encoder_hidden_states, encoder_hidden_states_image)
        clip_tokens = total_tokens - history_tokens
        return torch.cat([clean.unsqueeze(1).expand(-1, history_tokens, -1, -1),
                          timestep_proj.unsqueeze(1).expand(-1, clip_tokens, -1, -1)], dim=1)

    def _control_residual(self, layer, branches, rope, dense_scale) -> torch.Tensor:
        """Advance each active branch through its half block ``layer``; return Z_layer's output.

        ``branches`` is updated in place with the new branch tokens.
        """
        for parity, state in branches.items():
            out = self._run(state.blocks[layer], state.tokens, state.context, state.time, rope)
            branches[parity] = state._replace(tokens=out)
        dense, sparse = (branches[p].tokens if p in branches else None for p in (DENSE, SPARSE))
        return self.controller.residual(layer, dense, sparse, dense_scale)

    def _check_inputs(self, hidden_states, timestep, dense, sparse, history) -> None:
        if timestep.ndim != 1:
            raise ValueError("LongVieTransformer takes the Wan 2.1 timestep shape (B,)")
        shape = hidden_states.shape
        for name, control in (("dense", dense), ("sparse", sparse)):
            if control is not None and control.shape != hidden_states.shape:
                raise ValueError(f"{name} {tuple(control.shape)} != input {tuple(shape)}")
        if history is not None and (history.shape[:2], history.shape[3:]) != (shape[:2], shape[3:]):
            raise ValueError(f"history {tuple(history.shape)} vs input {tuple(shape)}")

    def _patchify(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 36, F, h, w) -> (B, tokens, width) through the base's (frozen) patch embedding."""
        return self.base.patch_embedding(video).flatten(2).transpose(1, 2).contiguous()

    def _conditions(self, timestep, encoder_hidden_states, encoder_hidden_states_image):
        """temb (B, width), timestep_proj (B, 6, width), context (B, [257 +] L, width)."""
        temb, timestep_proj, context, image_context = self.base.condition_embedder(
            timestep, encoder_hidden_states, encoder_hidden_states_image
        )
        timestep_proj = timestep_proj.unflatten(1, (6, -1))
        if image_context is not None:
            context = torch.concat([image_context, context], dim=1)
        return temb, timestep_proj, context

    def _branch_states(self, dense, sparse, context, timestep_proj) -> dict[int, Branch]:
        """The active branches' starting state, keyed by parity (DENSE, SPARSE)."""
        branches = {}
        if self.controller is None:
            return branches
        for parity, control in ((DENSE, dense), (SPARSE, sparse)):
            if control is None:
                continue
            blocks, control_in, context_in, time_in = self.controller.branch(parity)
            tokens = control_in(self._patchify(control))
            branches[parity] = Branch(blocks, tokens, context_in(context), time_in(timestep_proj))
        return branches

    def _run(self, block: nn.Module, *args) -> torch.Tensor:
        """One block, checkpointed when the base has gradient checkpointing on and grad is on."""
        if torch.is_grad_enabled() and self.base.gradient_checkpointing:
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def _head(self, tokens: torch.Tensor, temb: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """Output norm, projection and unpatchify, as the base does it (Wan 2.1 path)."""
        base = self.base
        batch, _, frames, height, width = shape
        p_t, p_h, p_w = base.config.patch_size
        shift, scale = (base.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        shift = shift.to(tokens.device)
        scale = scale.to(tokens.device)
        tokens = (base.norm_out(tokens.float()) * (1 + scale) + shift).type_as(tokens)
        tokens = base.proj_out(tokens)
        grid = (frames // p_t, height // p_h, width // p_w)
        tokens = tokens.reshape(batch, *grid, p_t, p_h, p_w, -1)
        tokens = tokens.permute(0, 7, 1, 4, 2, 5, 3, 6)
        return tokens.flatten(6, 7).flatten(4, 5).flatten(2, 3)
