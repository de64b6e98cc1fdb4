"""Training (``training``): the trainer, the VAE and base steps, stages 1-3."""

from __future__ import annotations

from dataclasses import dataclass, field


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
class FlowObjectiveConfig:
    """The flow-matching objective every DiT training shares: noise shift and caption dropout."""

    # Flow-matching noise shift (Wan: 5 at 480p; smaller images need less).
    shift: float = 3.0
    # Captions replaced by the empty caption this often (classifier-free guidance later).
    caption_dropout: float = 0.1


@dataclass
class BaseTrainingConfig(FlowObjectiveConfig):
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
class TrainingConfig:
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    vae: VaeTrainingConfig = field(default_factory=VaeTrainingConfig)
    base: BaseTrainingConfig = field(default_factory=BaseTrainingConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    stage3: Stage3Config = field(default_factory=Stage3Config)
