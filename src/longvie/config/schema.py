"""Typed schema of the Hydra config tree in ``conf/``.

Every YAML key has a field here, so OmegaConf rejects a misspelt key or a value of the wrong type
while composing, before any work starts. Cross-field rules that types cannot express live in
:func:`longvie.config.load.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Optional


@dataclass
class PathsConfig:
    """Where everything lives. Only ``root`` needs setting; the rest derive from it."""

    root: str = "."
    raw: str = "${paths.root}/data/raw"
    curated: str = "${paths.root}/data/curated"
    controls: str = "${paths.root}/data/controls"
    models: str = "${paths.root}/models"
    reports: str = "${paths.root}/reports"
    # The pretraining corpus of ``longvie pretrain`` (tracked by pretrain.dvc, like data/raw).
    pretrain: str = "${paths.root}/data/pretrain"


@dataclass
class VideoConfig:
    """The frame rate, size and clip length every curated clip has (and the model consumes).

    ``clip_frames`` must be 4k+1: the Wan VAE compresses time 4x after the first frame.
    """

    fps: int = 8
    width: int = 64
    height: int = 64
    clip_frames: int = 17


@dataclass
class SynthConfig:
    """The rendered default data set (``longvie synth``): seeded, so reruns are identical."""

    seed: int = 0
    train_videos: int = 32
    train_seconds: float = 20.0
    benchmark_videos: int = 4
    benchmark_seconds: float = 60.0
    fps: int = 8
    width: int = 64
    height: int = 64
    # Rays per pixel side; >1 renders larger and area-downsamples (anti-aliasing).
    supersample: int = 1
    min_objects: int = 3
    max_objects: int = 6
    moving_fraction: float = 0.5
    # Ground-truth tracks for a grid_size x grid_size grid of frame-0 pixels.
    track_grid: int = 16
    # x264 constant rate factor of the written mp4 (lower is better quality).
    crf: int = 12
    workers: int = 2
    # Sub-folder of paths.raw the rendered set is written to; user files elsewhere are untouched.
    subdir: str = "synth"
    # Re-render when the folder holds a different rendering (otherwise that is an error).
    force: bool = False


@dataclass
class CurationConfig:
    """Thresholds of ``longvie curate``. A segment or file failing one is rejected with a reason."""

    video_extensions: list[str] = field(
        default_factory=lambda: [".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"]
    )
    # Files written beside videos (ground truth, captions) that are not videos themselves.
    sidecar_suffixes: list[str] = field(default_factory=lambda: [".gt.npz", ".json", ".txt", ".md"])
    # Folder names under paths.raw whose videos are held out for the benchmark.
    benchmark_dirs: list[str] = field(default_factory=lambda: ["benchmark"])
    # Fraction of the remaining source videos held out (by a hash of the path) for validation.
    val_fraction: float = 0.1
    # PySceneDetect ContentDetector threshold and the shortest shot it may cut.
    scene_threshold: float = 27.0
    min_scene_seconds: float = 0.5
    # A source whose short side is smaller than this is rejected as too small.
    min_short_side: int = 64
    max_aspect_ratio: float = 3.0
    # Clips share this many frames with the previous clip (1 = the generation stride).
    clip_overlap: int = 1
    # Mean absolute frame-to-frame change (0-255 scale) below which a segment is static.
    static_threshold: float = 0.5
    # Mean variance of the Laplacian below which a segment is blurred.
    blur_threshold: float = 20.0
    # Two segments are near-duplicates when both their first-frame and mean-frame 16x16 grey
    # thumbnails differ by less than this mean absolute difference (0-255 scale).
    duplicate_max_diff: float = 3.0
    # Decoding fewer than (1 - this) x the declared frames marks a file as truncated.
    truncation_tolerance: float = 0.1
    # Greyscale: mean |R-G| + |G-B| below this (0-255 scale).
    grayscale_tolerance: float = 1.0
    # Variable frame rate: relative spread of frame intervals above this.
    vfr_tolerance: float = 0.1
    # Files and segments that pass get converted in this many worker processes.
    workers: int = 2
    # Preview image (a grid of clip frames) for the Dagster UI and the README.
    preview_clips: int = 12


@dataclass
class DepthModelConfig:
    """The depth model of the ``estimated`` control source (any video, no ground truth).

    ``kind: longvie`` is the small network the pipeline trains on rendered ground truth
    (``longvie depth-estimator``); ``kind: transformers`` is any transformers depth-estimation
    model (Depth Anything V2 and kin) from a local folder or hub id, loaded offline.
    """

    kind: str = "longvie"
    model: str = "${paths.models}/depth_estimator"
    # What the model outputs: "disparity" (relative inverse depth, e.g. Depth Anything V2) or
    # "depth" (metric depth, inverted before normalisation).
    output: str = "disparity"
    batch_size: int = 16
    device: str = "cpu"


@dataclass
class DepthTrainingConfig:
    """Training of the small depth network on the rendered ground truth (train split only)."""

    steps: int = 1500
    batch_size: int = 32
    learning_rate: float = 2e-3
    # Channels of the first UNet level (doubling per level).
    channels: int = 16
    levels: int = 3
    seed: int = 0
    # At most this many frames are sampled from the training clips.
    max_frames: int = 6000


@dataclass
class TrackerConfig:
    """OpenCV pyramidal Lucas-Kanade with a forward-backward check (the ``estimated`` tracks)."""

    window: int = 15
    levels: int = 3
    # A step whose forward-backward round trip misses by more than this (px) loses the track.
    fb_threshold_px: float = 1.0
    # A step is also rejected when the window at its end correlates (zero-mean NCC) less than
    # this with the window at its start: replaced texture passes the round trip, not this.
    min_ncc: float = 0.7
    # Lost tracks are retried every frame from the query frame (re-seeding), with a stricter
    # correlation: over many tries chance look-alikes would otherwise be accepted.
    reseed: bool = True
    reseed_min_ncc: float = 0.85


@dataclass
class ControlsConfig:
    """Control-signal extraction (``longvie controls``): dense depth + sparse point maps."""

    # Raw sub-folder (first path component under paths.raw) -> source of its controls:
    # "engine" (ground-truth sidecars of rendered videos) or "estimated" (models).
    source_by_dir: dict[str, str] = field(default_factory=lambda: {"synth": "engine"})
    default_source: str = "estimated"
    # Queries: a grid x grid uniform grid on each clip's first frame.
    track_grid: int = 16
    # Global dense normalisation over a whole source video: percentiles of the disparity.
    depth_low_percentile: float = 5.0
    depth_high_percentile: float = 95.0
    # Point-map blue channel: percentiles of the queries' inverse depth.
    colour_low_percentile: float = 2.0
    colour_high_percentile: float = 98.0
    # Histogram bins of the streaming percentile pass.
    histogram_bins: int = 16384
    # Held-out splits on which the estimated controls are measured against ground truth.
    evaluate_splits: list[str] = field(default_factory=lambda: ["benchmark", "val"])
    workers: int = 2
    # Frames in each source's preview GIF (RGB | depth | point map).
    preview_frames: int = 32
    depth: DepthModelConfig = field(default_factory=DepthModelConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    depth_training: DepthTrainingConfig = field(default_factory=DepthTrainingConfig)


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


@dataclass
class TrainerConfig:
    """Lightning ``Trainer`` settings shared by every training step; scale-out is config only."""

    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    # "auto" (single process), "ddp", "fsdp", "deepspeed_stage_2", ...
    strategy: str = "auto"
    # "32-true" on CPUs; "bf16-mixed" on GPUs.
    precision: str = "32-true"
    gradient_checkpointing: bool = False
    # A checkpoint every this many optimizer steps (and at the end); a killed run resumes there.
    checkpoint_every: int = 50
    log_every: int = 10
    num_workers: int = 0
    seed: int = 0
    # Decode every clip into memory once (the CPU profiles' data fit in a few hundred MB).
    preload: bool = True


@dataclass
class PhaseConfig:
    """One phase of a progressive short-to-long schedule (Loong): frames per sample, steps."""

    frames: int = 1
    steps: int = 100
    batch_size: int = 8


@dataclass
class VaeTrainingConfig:
    """Pretraining of the small video VAE (CPU profiles): single frames first, then clips."""

    # Single frames teach the spatial path cheaply; clips need their own steps for the temporal
    # layers (later frames fade to grey without them). The Wan 2.2 layout of tiny is about 1.7x
    # faster per step than the Wan 2.1 one was, which pays for the longer clip phases.
    phases: list[PhaseConfig] = field(
        default_factory=lambda: [
            PhaseConfig(frames=1, steps=800, batch_size=8),
            PhaseConfig(frames=5, steps=200, batch_size=4),
            PhaseConfig(frames=17, steps=100, batch_size=2),
        ]
    )
    learning_rate: float = 5e-4
    kl_weight: float = 1e-6


@dataclass
class BaseTrainingConfig:
    """Pretraining of the small I2V DiT + caption encoder on cached latents (CPU profiles).

    Phases run Loong's short-to-long schedule: single frames (text-to-image, no conditioning
    frame), then short clips, then full clips.
    """

    phases: list[PhaseConfig] = field(
        default_factory=lambda: [
            PhaseConfig(frames=1, steps=300, batch_size=16),
            PhaseConfig(frames=5, steps=300, batch_size=8),
            PhaseConfig(frames=17, steps=1500, batch_size=8),
        ]
    )
    learning_rate: float = 5e-4
    # Loong's loss re-weighting: the first latent frames (its first 17 pixel frames) weigh
    # (1 + lambda); 0 turns it off.
    early_frame_lambda: float = 1.0
    # Flow-matching noise shift (Wan: 5 at 480p; smaller images need less).
    shift: float = 3.0
    # Captions replaced by the empty caption this often (classifier-free guidance later).
    caption_dropout: float = 0.1
    # Held-out clips (val + benchmark) the report's flow-matching loss is measured on.
    heldout_clips: int = 32


@dataclass
class StageConfig:
    """What every controller stage (1, 2, 3) shares: steps, batch, learning rate, evaluation.

    The paper's rates (1e-5, 5e-6) are for a 14B model fine-tuned at batch 16; these defaults
    suit a controller grown from zero on a small model (``model.controlled=''``); profiles that
    start from trained control weights fine-tune with less (``conf/profile/tiny.yaml``).
    """

    steps: int = 1000
    batch_size: int = 8
    learning_rate: float = 5e-4
    weight_decay: float = 0.01
    # Held-out clips (val + benchmark) the report's comparisons are measured on.
    heldout_clips: int = 32
    # Share of samples whose controls are zeroed, so the model keeps generating without them.
    control_dropout: float = 0.0
    # Measure the held-out comparison every this many steps too (0: only before and after):
    # reports/train_<stage>_curve.png, the curve a stage's step count is chosen from.
    curve_every: int = 0


@dataclass
class Stage1Config(StageConfig):
    """Multi-modal guidance: train the controller; degrade the dense control late in the stage."""

    steps: int = 700
    # The dense degradations run in the last third of the stage only.
    degrade_from_fraction: float = 0.6667
    feature_p: float = 0.15
    feature_low: float = 0.05
    feature_high: float = 1.0
    data_p: float = 0.10


@dataclass
class Stage2Config(StageConfig):
    """Degradation-aware first frame: with ``first_frame_p`` the condition becomes T(I)."""

    steps: int = 400
    first_frame_p: float = 0.2
    # Share of T(I) that is the encoding degradation (decode o encode)^K; the rest is generation.
    encoding_share: float = 0.2
    drift_p: float = 0.1
    # The generation degradation noises to t of this many sampling steps and denoises t steps.
    sampling_steps: int = 50


@dataclass
class Stage3Config(Stage2Config):
    """History context: the preceding frames of the same source as tokens, the stage-3 loss."""

    steps: int = 1000
    # Half of stages 1-2 (the paper: 5e-6 after 1e-5), for the controller and the base's
    # self-attention alike. A fifth of it for the attention (5e-5) left history hurting the
    # held-out loss after 600 steps (0.090 with vs 0.074 without).
    learning_rate: float = 2.5e-4
    base_attention_learning_rate: float = 2.5e-4
    # History lengths N_H in pixel frames (multiples of the VAE's 4x time stride), and how
    # often a sample gets none. The paper's {4, 8, 12, 16} (wan14b) is at most a fifth of its
    # 21 latent frames; scaled to tiny's 5 it is {4, 8}. Trained with {4, ..., 16}, a history
    # as long as the clip raised the held-out loss (0.068 with vs 0.057 without, 500 steps).
    history_frames: list[int] = field(default_factory=lambda: [4, 8])
    no_history_p: float = 0.2
    # Most VAE round trips K of the history's encoding degradation (the paper: 10, wan14b). A
    # round trip of a whole preceding clip is a video decode + encode (0.4 s for 17 frames at
    # 64x64 on two cores), so the CPU profiles cap it; severities keep the 1 / (1 + k) weighting.
    history_encoding_rounds: int = 2
    w_deg: float = 0.2
    w_gt: float = 0.15
    w_cons: float = 0.5


@dataclass
class CorpusConfig:
    """The rendered pretraining corpus: many short scenes of extended variety (no ground truth).

    Seeds come from the ``pretrain`` split code, disjoint from the pipeline's train and benchmark
    scenes; size, frame rate, crf and workers are ``synth``'s.
    """

    videos: int = 500
    # 65 frames at 8 fps: four 17-frame clips overlapping by one frame.
    seconds: float = 8.125
    min_objects: int = 2
    max_objects: int = 7
    moving_fraction: float = 0.6
    variety: str = "extended"
    force: bool = False


@dataclass
class AdversarialConfig:
    """The VAE decoder's adversarial fine-tuning (encoder frozen); 0 steps turns it off."""

    phases: list[PhaseConfig] = field(
        default_factory=lambda: [PhaseConfig(frames=17, steps=0, batch_size=2)]
    )
    # Weight of the hinge GAN loss next to L1 (single-frame probes: 0.005 kept 0.83 of the
    # reference's sharpness at 26.7 dB, L1 alone 0.30 at 28.5 dB).
    weight: float = 0.005
    learning_rate: float = 1e-4
    discriminator_width: int = 32


@dataclass
class PretrainVaeConfig:
    """The VAE part of ``longvie pretrain``: frames, then short clips, then full clips."""

    phases: list[PhaseConfig] = field(
        default_factory=lambda: [
            PhaseConfig(frames=1, steps=2500, batch_size=8),
            PhaseConfig(frames=5, steps=800, batch_size=4),
            PhaseConfig(frames=17, steps=1200, batch_size=2),
        ]
    )
    learning_rate: float = 1e-3
    # Cosine decay to this fraction of the rate over all steps (after a short warm-up).
    final_lr_fraction: float = 0.05
    warmup_steps: int = 100
    kl_weight: float = 1e-6
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)


@dataclass
class PretrainDitConfig:
    """The DiT + caption-encoder part of ``longvie pretrain`` (Loong's short-to-long phases)."""

    phases: list[PhaseConfig] = field(
        default_factory=lambda: [
            PhaseConfig(frames=1, steps=600, batch_size=16),
            PhaseConfig(frames=5, steps=600, batch_size=8),
            PhaseConfig(frames=17, steps=3600, batch_size=8),
        ]
    )
    learning_rate: float = 5e-4
    final_lr_fraction: float = 0.05
    warmup_steps: int = 200
    early_frame_lambda: float = 1.0
    shift: float = 3.0
    caption_dropout: float = 0.1


@dataclass
class PretrainControlConfig(StageConfig):
    """The control part of ``longvie pretrain``: the base DiT and the dual controller trained
    together on the corpus with its exact depth and tracks, controls dropped now and then."""

    # The shipped weights' count: 4,000 steps left the held-out loss falling, 6,000 gained
    # 0.013 SSIM and 0.025 of loss ratio on it (docs/pretraining.md).
    steps: int = 6000
    batch_size: int = 8
    # The controller starts from zero, the base from its pretraining: the base moves slower.
    learning_rate: float = 5e-4
    base_learning_rate: float = 2e-4
    weight_decay: float = 0.0
    control_dropout: float = 0.2
    caption_dropout: float = 0.1
    shift: float = 3.0
    # The base VAE's decoder fine-tuned further with the adversarial loss (encoder frozen: the
    # latents, and so the DiT and controller, are unchanged) and shipped in the folder's vae/;
    # 0 steps ships none (the base's VAE decodes). The samples' sharpness is the decoder's.
    decoder: AdversarialConfig = field(default_factory=AdversarialConfig)
    # Where the folder is written (over the base at ``pretrain.output``, which it names).
    output: str = "${paths.root}/weights/tiny-longvie"
    # Held-out generation with the benchmark's sampler, at guidance 1 and at the benchmark's:
    # these sampler seeds.
    sample_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])


@dataclass
class PretrainConfig:
    """``longvie pretrain``: the tiny base (VAE, then DiT + caption encoder) trained once on a
    corpus of its own and written as a diffusers-format folder (what ``model.pretrained`` of
    ``tiny`` loads, as ``wan14b`` loads Wan2.1-I2V-14B)."""

    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    vae: PretrainVaeConfig = field(default_factory=PretrainVaeConfig)
    dit: PretrainDitConfig = field(default_factory=PretrainDitConfig)
    control: PretrainControlConfig = field(default_factory=PretrainControlConfig)
    # Which parts run: "base" (corpus, VAE, DiT -> ``output``) and "control" (DiT + controller
    # over that base -> ``control.output``).
    parts: list[str] = field(default_factory=lambda: ["base", "control"])
    # Where the finished folder is written (the shipped tiny base: weights/tiny-base).
    output: str = "${paths.root}/weights/tiny-base"
    # Held-out evaluation on the pipeline's benchmark scenes (rendered in memory by synth):
    # this many 17-frame clips per benchmark video, spread over the video.
    heldout_videos: int = 4
    heldout_clips_per_video: int = 4
    # Generated held-out samples (sharpness ratio, the picture): sampler steps and guidance.
    sample_steps: int = 30
    sample_guidance: float = 3.0
    sample_shift: float = 3.0
    seed: int = 0


@dataclass
class TrainingConfig:
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    vae: VaeTrainingConfig = field(default_factory=VaeTrainingConfig)
    base: BaseTrainingConfig = field(default_factory=BaseTrainingConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    stage3: Stage3Config = field(default_factory=Stage3Config)


@dataclass
class GenerationConfig:
    """``longvie generate``: which model, which long video's controls, and the sampler.

    LongVie's sampler is 50 Euler steps, shift 5, guidance 5 (wan14b); the CPU profiles
    take 8 UniPC steps (bench/sampler_steps.py) and the shift they were trained with.
    """

    # A registry alias (champion, challenger), a version number, or a model folder.
    model: str = "champion"
    # A curated source id: its first frame, captions and stored controls.
    source: str = ""
    # Or your own: a first frame image, and depth + point-map videos (normalised here, over the
    # whole video, before splitting into clips).
    first_frame: str = ""
    depth_video: str = ""
    point_map_video: str = ""
    caption: str = ""
    # Frames to generate; 0 = as many as the controls have.
    frames: int = 0
    output: str = "${paths.root}/outputs/generated.mp4"
    # 8 UniPC steps land closer to the converged (100-step) solution than 20 Euler steps, at 36 %
    # of their cost (bench/sampler_steps.py: latent RMS 0.118 vs 0.134 on 8 held-out clips).
    steps: int = 8
    shift: float = 3.0
    guidance: float = 3.0
    history_frames: int = 8
    seed: int = 0
    # Each next clip's conditioning frame takes the first frame's per-channel colour mean and
    # spread (generation.long_video.anchor_colours).
    colour_anchor: bool = False
    # "euler" (FlowMatchEulerDiscreteScheduler's schedule) or "unipc" (UniPCMultistepScheduler
    # with flow sigmas, as the Wan pipeline samples: far fewer steps for the same error).
    solver: str = "unipc"


@dataclass
class BenchmarkConfig:
    """``longvie benchmark``: the held-out long videos regenerated and scored.

    Every curated source of the ``benchmark`` split is a benchmark video (rendered ones and any
    user videos curated into it). The sampler is ``generation``'s, except ``steps`` when set.
    """

    # A registry alias, a version number, or a model folder; empty = the version the last
    # `train stage=3` registered (reports/train_3.json), else the newest stage-3 version.
    candidate: str = ""
    # Benchmark videos to use (0 = all), in source-id order.
    videos: int = 0
    # Frames regenerated per video from its start (0 = the whole video; must hold one clip).
    frames: int = 0
    # Sampler steps (0 = generation.steps).
    steps: int = 0
    # Sampler seeds per generating contender (generation.seed, +1, ...). The gate's figures
    # (SSIM, PSNR, flicker, seams, drift) are their means, and their spread is reported: on tiny
    # the candidate-vs-naive gaps change sign from one seed to the next (bench/seed_spread.py).
    # Control fidelity, motion, model-based metrics and the pictures come from the first seed.
    seeds: int = 1
    # Model-based metrics run only when their weights are configured (a local folder or hub id
    # loadable offline): VBench's subject consistency uses DINO features, background
    # consistency CLIP image features.
    subject_consistency_model: str = ""
    background_consistency_model: str = ""
    # Where the side-by-side videos go (also logged to MLflow).
    videos_dir: str = "${paths.root}/outputs/benchmark"


@dataclass
class MlflowConfig:
    """Where runs and registered models go. ``MLFLOW_TRACKING_URI`` overrides the URI."""

    tracking_uri: str = "sqlite:///${paths.root}/mlflow.db"
    experiment: str = "longvie"
    # Every stage's final weights become a version of this registered model.
    registered_model: str = "longvie"
    # Where a newly created experiment stores artifacts (MLflow's default is ./mlruns under
    # whatever the working directory happens to be).
    artifact_root: str = "${paths.root}/mlruns"


@dataclass
class GateMetricConfig:
    """One benchmark metric of the promotion gate: its weight in the composite score, which way
    is better, and how much worse than the champion it may be before that counts as a
    regression (in the metric's own units)."""

    weight: float = 1.0
    # "higher" or "lower": which way is better.
    direction: str = "higher"
    tolerance: float = 0.0


@dataclass
class PromotionConfig:
    """The champion/challenger gate (``longvie promote``) over the benchmark table.

    Composite = sum of weight x sign x value (sign -1 for lower-is-better) over ``metrics``. A
    candidate becomes champion only if it is strictly better than every baseline on each of
    ``must_beat_baselines`` and on the composite, and (when a champion exists) beats the
    champion's composite by more than ``margin`` with no metric worse beyond its tolerance.
    Every win must also exceed ``k_standard_errors`` standard errors of the difference over the
    benchmark's sampler seeds: a gap that one more seed could close is no win.
    """

    metrics: dict[str, GateMetricConfig] = field(
        default_factory=lambda: {
            "ssim": GateMetricConfig(weight=1.0, direction="higher", tolerance=0.01),
            "psnr_db": GateMetricConfig(weight=0.02, direction="higher", tolerance=0.5),
            "seam_discontinuity": GateMetricConfig(weight=0.2, direction="lower", tolerance=0.1),
            # Slope of SSIM along the long video: less negative = less drift.
            "ssim_drift_slope": GateMetricConfig(weight=5.0, direction="higher", tolerance=0.005),
            # VBench temporal flickering score (1 = no flicker).
            "flicker": GateMetricConfig(weight=0.5, direction="higher", tolerance=0.01),
        }
    )
    margin: float = 0.005
    # A win counts when the difference exceeds k standard errors over seeds (paired by seed
    # where both sides were sampled; 0 = bare means).
    k_standard_errors: float = 2.0
    must_beat_baselines: list[str] = field(
        default_factory=lambda: ["ssim", "psnr_db", "seam_discontinuity", "ssim_drift_slope"]
    )
    # Benchmark table entries every candidate must beat: a model that does no better than
    # carrying the first frame along its own tracks (controls_only) adds nothing to its controls.
    baselines: list[str] = field(default_factory=lambda: ["static", "naive", "controls_only"])
    # Seconds a promotion waits for another one holding the registry lock.
    lock_timeout_s: float = 300.0


class TrainingLaunch(StrEnum):
    """Where a training asset's training runs (``orchestration.training_launch``)."""

    in_process = "in_process"
    pipes = "pipes"


class ExecutorKind(StrEnum):
    """The Dagster executor of the code location's jobs (``orchestration.executor``)."""

    in_process = "in_process"
    multiprocess = "multiprocess"


@dataclass
class OrchestrationConfig:
    """How Dagster runs the steps (docs/scale_out.md). The run launcher and storage are Dagster
    instance settings (``dagster.yaml``), not config.

    ``executor`` and ``max_concurrent`` are read once, when the code location loads, from the
    config composed without overrides (``LONGVIE_EXECUTOR`` overrides ``executor``); the other
    keys are read per run, from the ``longvie`` resource's overrides.
    """

    # "in_process": the training assets train in the Dagster step's process. "pipes": they run
    # `<launch_command> train stage=<stage> <the resource's overrides>` as a subprocess through
    # Dagster Pipes, which reports the materialisation (torchrun, Lightning's multi-GPU launch).
    training_launch: TrainingLaunch = TrainingLaunch.in_process
    # Command prefix of the `pipes` launch, e.g. [torchrun, --nproc_per_node=8, -m, longvie];
    # empty = this Python: [sys.executable, -m, longvie].
    launch_command: list[str] = field(default_factory=list)
    executor: ExecutorKind = ExecutorKind.multiprocess
    # Steps the multiprocess executor runs at once; 0 = one per CPU core (Dagster's default).
    max_concurrent: int = 0
    # The blocking check `training_loss_is_finite_and_not_rising` judges the trend (mean of the
    # last 10 % of the logged losses against the first 10 %) only with at least this many losses;
    # finiteness always. A run of a few steps (the smoke profile) has no trend to judge.
    loss_trend_min_steps: int = 10
    # A rise of the last 10 %'s mean over the first's within this many standard errors of their
    # difference is scatter, not divergence (stage 2 starts from a trained controller: its loss
    # is flat: "last below first" stopped a fresh `make run` at 0.3558 vs 0.3474, 1.0 SE).
    loss_rise_standard_errors: float = 2.0
    # Seconds a step waits for another run of the same step on the same root (its lock under
    # <paths.models>/.locks) before refusing with the holder's pid, host and command.
    step_lock_wait_s: float = 0.0
    # Free space every step needs on its output folders' file systems before it starts.
    min_free_mb: float = 200.0


@dataclass
class ServingConfig:
    """The registered model as an MLflow pyfunc: ``longvie serve`` and what one request may ask.

    Every version is logged with these limits and ``generation``'s sampler as its defaults.
    """

    # The registry alias or version ``longvie serve`` serves.
    model: str = "champion"
    # Loopback by default: the server has no authentication.
    host: str = "127.0.0.1"
    port: int = 5001
    # The longest video one request may ask for: it is generated whole before it is returned.
    max_frames: int = 481
    # Seconds the server gives one request (`mlflow models serve --timeout`).
    timeout_s: int = 600


@dataclass
class LongvieConfig:
    profile_name: str = "tiny"
    paths: PathsConfig = field(default_factory=PathsConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    curation: CurationConfig = field(default_factory=CurationConfig)
    controls: ControlsConfig = field(default_factory=ControlsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    promotion: PromotionConfig = field(default_factory=PromotionConfig)
    orchestration: OrchestrationConfig = field(default_factory=OrchestrationConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
