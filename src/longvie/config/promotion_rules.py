"""Rules of the ``promotion`` section that types cannot express, checked with the rest of the
config before any work starts (the gate itself, :mod:`longvie.promotion.gate`, applies them)."""

from __future__ import annotations

from longvie.config.schema import PromotionConfig

CANDIDATE = "candidate"
CHAMPION = "champion"
DIRECTIONS = ("higher", "lower")


def config_problems(config: PromotionConfig) -> list[str]:
    """Rules of the ``promotion`` section that types cannot express; each names its key.

    Public so config validation can reject a bad override before any work starts.
    """
    problems: list[str] = []
    if not config.metrics:
        problems.append("promotion.metrics must name at least one metric")
    for name, metric in config.metrics.items():
        if metric.direction not in DIRECTIONS:
            problems.append(f"promotion.metrics.{name}.direction={metric.direction!r} must be "
                            f"one of {DIRECTIONS}")
        if not metric.weight >= 0:
            problems.append(f"promotion.metrics.{name}.weight={metric.weight} must be >= 0")
        if not metric.tolerance >= 0:
            problems.append(f"promotion.metrics.{name}.tolerance={metric.tolerance} must be >= 0")
    for name in config.must_beat_baselines:
        if name not in config.metrics:
            problems.append(f"promotion.must_beat_baselines: {name!r} is not one of "
                            f"promotion.metrics ({', '.join(config.metrics)})")
    if not config.margin >= 0:
        problems.append(f"promotion.margin={config.margin} must be >= 0")
    if not config.k_standard_errors >= 0:
        problems.append(f"promotion.k_standard_errors={config.k_standard_errors} must be >= 0")
    if not config.baselines:
        problems.append("promotion.baselines must name at least one baseline")
    if CANDIDATE in config.baselines or CHAMPION in config.baselines:
        problems.append("promotion.baselines must not name 'candidate' or 'champion'")
    return problems
