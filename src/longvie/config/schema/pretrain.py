"""``longvie pretrain`` (``pretrain``): corpus, VAE, DiT and control parts."""

from __future__ import annotations

from dataclasses import dataclass, field

from longvie.config.schema.training import FlowObjectiveConfig, PhaseConfig, StageConfig


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
class WarmupCosineConfig:
    """A learning rate with a short linear warm-up, then cosine decay to a fraction of it."""

    learning_rate: float = 1e-3
    # Cosine decay to this fraction of the rate over all steps (after the warm-up).
    final_lr_fraction: float = 0.05
    warmup_steps: int = 100


@dataclass
class PretrainVaeConfig(WarmupCosineConfig):
    """The VAE part of ``longvie pretrain``: frames, then short clips, then full clips."""

    phases: list[PhaseConfig] = field(
        default_factory=lambda: [
            PhaseConfig(frames=1, steps=2500, batch_size=8),
            PhaseConfig(frames=5, steps=800, batch_size=4),
            PhaseConfig(frames=17, steps=1200, batch_size=2),
        ]
    )
    kl_weight: float = 1e-6
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)


@dataclass
class PretrainDitConfig(WarmupCosineConfig, FlowObjectiveConfig):
    """The DiT + caption-encoder part of ``longvie pretrain`` (Loong's short-to-long phases)."""

    phases: list[PhaseConfig] = field(
        default_factory=lambda: [
            PhaseConfig(frames=1, steps=600, batch_size=16),
            PhaseConfig(frames=5, steps=600, batch_size=8),
            PhaseConfig(frames=17, steps=3600, batch_size=8),
        ]
    )
    learning_rate: float = 5e-4
    warmup_steps: int = 200
    early_frame_lambda: float = 1.0


@dataclass
class PretrainControlConfig(StageConfig, FlowObjectiveConfig):
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
