"""MLflow tracking and the registry's promotion gate (``mlflow``, ``promotion``)."""

from __future__ import annotations

from dataclasses import dataclass, field


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
