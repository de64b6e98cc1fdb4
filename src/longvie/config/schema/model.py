"""The generator (``model``): DiT, VAE, caption encoder, dual controller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class TransformerConfig:
    """``WanTransformer3DModel`` arguments; the I2V input has 36 channels."""

    num_layers: int = 4
    num_attention_heads: int = 4
    attention_head_dim: int = 32
    ffn_dim: int = 512
    text_dim: int = 128
    freq_dim: int = 64
    patch_size: list[int] = field(default_factory=lambda: [1, 2, 2])
    in_channels: int = 36
    out_channels: int = 16
    cross_attn_norm: bool = True
    qk_norm: str = "rms_norm_across_heads"
    eps: float = 1e-6
    # Wan2.1-I2V-14B takes CLIP image embeddings (1280) through added key/value projections.
    image_dim: Optional[int] = None
    added_kv_proj_dim: Optional[int] = None
    rope_max_seq_len: int = 1024


@dataclass
class VaeConfig:
    """``AutoencoderKLWan`` arguments: 8x spatial, 4x temporal compression, 16 latent channels.

    The defaults are Wan 2.1's layout (three downsamplings at full resolution). ``patch_size``
    2 with ``in_channels``/``out_channels`` 12 and ``is_residual`` is Wan 2.2's layout: pixels
    are folded 2x2 into channels first and the resamplings get average-pool / duplicate
    shortcuts; with two downsamplings it keeps the 8x of the Wan 2.1 latents.
    """

    base_dim: int = 8
    z_dim: int = 16
    dim_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 4])
    num_res_blocks: int = 1
    temperal_downsample: list[bool] = field(default_factory=lambda: [False, True, True])
    patch_size: int | None = None
    in_channels: int = 3
    out_channels: int = 3
    is_residual: bool = False


@dataclass
class TextEncoderConfig:
    """The caption encoder behind one interface.

    ``captions``: a word vocabulary built from the training captions and a small transformer
    trained with the model (no download). ``umt5``: the pretrained UMT5 encoder of a Wan folder
    (``text_encoder`` + ``tokenizer`` sub-folders of ``model.pretrained``).
    """

    kind: str = "captions"
    max_tokens: int = 32
    layers: int = 2
    heads: int = 4


@dataclass
class ControllerConfig:
    """LongVie's dual controller: half-width dense and sparse copies of the first K blocks."""

    num_layers: int = 2


@dataclass
class ModelConfig:
    """The generator. ``pretrained`` (a diffusers Wan I2V folder or hub id) loads weights;
    empty builds the sub-models from the sizes below (tiny/smoke, trained by `base_model`)."""

    pretrained: str = ""
    # "joint": the VAE encodes [first frame, zero frames] as the Wan I2V pipeline does (needed
    # for pretrained weights); "first_frame": only the first latent frame is encoded, the rest
    # are zeros (one image encode instead of a clip encode: what the CPU profiles train with).
    condition_encoding: str = "first_frame"
    # How the sparse control reaches the model: "point_map" (LongVie: each track coloured by its
    # query position and depth) or "first_frame" (each track coloured by the conditioning
    # frame under its query point: frame 0 carried along the tracks, far to near). The
    # controls on disk are the same; the colouring is applied when the model reads them.
    sparse_control: str = "point_map"
    # A folder of control-aware weights over ``pretrained`` (``longvie pretrain``'s control
    # part: a DiT and a dual controller trained together), as LongVie's release ships its
    # dit + control weights beside Wan's; '' starts stage 1 from the base with a fresh
    # zero-initialised controller (LongVie's recipe).
    controlled: str = ""
    dtype: str = "float32"
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    vae: VaeConfig = field(default_factory=VaeConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
