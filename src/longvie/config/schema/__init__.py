"""Typed schema of the Hydra config tree in ``conf/``.

Every YAML key has a field here, so OmegaConf rejects a misspelt key or a value of the wrong type
while composing, before any work starts. Cross-field rules that types cannot express live in
:func:`longvie.config.load.validate`.

One module per section of the tree (``paths``/``video`` in ``project``, ``model`` in
``model``, ...); this package assembles the root and re-exports every section class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from longvie.config.schema.controls import (
    ControlsConfig,
    DepthModelConfig,
    DepthTrainingConfig,
    TrackerConfig,
)
from longvie.config.schema.data import CurationConfig, SynthConfig
from longvie.config.schema.generation import BenchmarkConfig, GenerationConfig
from longvie.config.schema.model import (
    ControllerConfig,
    ModelConfig,
    TextEncoderConfig,
    TransformerConfig,
    VaeConfig,
)
from longvie.config.schema.orchestration import (
    ExecutorKind,
    OrchestrationConfig,
    ServingConfig,
    TrainingLaunch,
)
from longvie.config.schema.pretrain import (
    AdversarialConfig,
    CorpusConfig,
    PretrainConfig,
    PretrainControlConfig,
    PretrainDitConfig,
    PretrainVaeConfig,
    WarmupCosineConfig,
)
from longvie.config.schema.project import PathsConfig, VideoConfig
from longvie.config.schema.registry import GateMetricConfig, MlflowConfig, PromotionConfig
from longvie.config.schema.training import (
    BaseTrainingConfig,
    FlowObjectiveConfig,
    PhaseConfig,
    Stage1Config,
    Stage2Config,
    Stage3Config,
    StageConfig,
    TrainerConfig,
    TrainingConfig,
    VaeTrainingConfig,
)

__all__ = [
    "AdversarialConfig",
    "BaseTrainingConfig",
    "BenchmarkConfig",
    "ControllerConfig",
    "ControlsConfig",
    "CorpusConfig",
    "CurationConfig",
    "DepthModelConfig",
    "DepthTrainingConfig",
    "ExecutorKind",
    "FlowObjectiveConfig",
    "GateMetricConfig",
    "GenerationConfig",
    "LongvieConfig",
    "MlflowConfig",
    "ModelConfig",
    "OrchestrationConfig",
    "PathsConfig",
    "PhaseConfig",
    "PretrainConfig",
    "PretrainControlConfig",
    "PretrainDitConfig",
    "PretrainVaeConfig",
    "PromotionConfig",
    "ServingConfig",
    "Stage1Config",
    "Stage2Config",
    "Stage3Config",
    "StageConfig",
    "SynthConfig",
    "TextEncoderConfig",
    "TrackerConfig",
    "TrainerConfig",
    "TrainingConfig",
    "TrainingLaunch",
    "TransformerConfig",
    "VaeConfig",
    "VaeTrainingConfig",
    "VideoConfig",
    "WarmupCosineConfig",
]


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
