"""The champion/challenger decision over a benchmark table: pure, no MLflow, no files.

Kept apart from the registry so the rule itself can be read and tested on constructed tables;
:mod:`longvie.promotion.registry_aliases` applies its verdict to the model registry.

Wins are judged on evidence: with the benchmark's per-seed figures, a difference counts only
beyond ``k_standard_errors`` standard errors over seeds (of the per-seed differences when both
sides were sampled with the same seeds; of the candidate's seeds against a deterministic
baseline such as the static video). Every comparison is reported with its margin.

Conservative by design: a candidate whose value for a must-beat metric is missing cannot show
it beats the baselines, so it stays challenger; a metric missing for any model is left out of
every composite (scores over different metric sets are not comparable), and the reasons say so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from longvie.config.promotion_rules import CANDIDATE, CHAMPION, config_problems
from longvie.config.schema import LongvieConfig, PromotionConfig
from longvie.errors import LongvieError

ModelsTable = Mapping[str, Mapping[str, "float | None"]]
# model -> sampler seed -> metric -> value (the benchmark report's ``per_seed``).
SeedTable = Mapping[str, Mapping[str, Mapping[str, "float | None"]]]
COMPOSITE = "composite"


@dataclass(frozen=True)
class Comparison:
    """The candidate against one other model on one metric (or the composite score).

    ``difference`` is signed so that positive means the candidate is better; it wins when the
    difference exceeds ``needed`` = k x ``standard_error`` (and is positive).
    """

    against: str
    metric: str
    candidate: float
    other: float
    difference: float
    standard_error: float
    needed: float
    seeds: int
    won: bool

    def margin(self) -> str:
        """"difference 0.02 needs > 0.012 (3 seeds, SE 0.006)"."""
        spread = (f"{self.seeds} seeds, SE {_fmt(self.standard_error)}" if self.seeds > 1
                  else "one seed, no spread")
        return f"difference {_fmt(self.difference)} needs > {_fmt(self.needed)} ({spread})"

    def sentence(self) -> str:
        verdict = "a win" if self.won else "no win"
        return (f"{self.metric} against {self.against}: {_fmt(self.candidate)} vs "
                f"{_fmt(self.other)}, {self.margin()}: {verdict}")


@dataclass(frozen=True)
class Decision:
    """The verdict, every reason as a sentence with its numbers, and each check by name."""

    decision: Literal["champion", "challenger"]
    reasons: list[str]
    # Composite score of each model in the table (candidate, baselines, champion).
    composite: dict[str, float]
    # e.g. "beats_static.ssim", "beats_naive.composite", "beats_champion.composite_margin",
    # "within_tolerance.psnr_db"; True = passed.
    checks: dict[str, bool]
    # Each win the gate asked for, with its difference and the k-SE margin it had to exceed.
    comparisons: list[Comparison] = field(default_factory=list)


def decide(models: ModelsTable, config: PromotionConfig | LongvieConfig,
           per_seed: SeedTable | None = None) -> Decision:
    """Champion or challenger for ``models['candidate']`` (``config``: the whole config or its
    ``promotion`` section; ``per_seed``: the figures per sampler seed, without which every
    difference has no known spread). Every check runs, so a challenger gets every reason."""
    gate = config.promotion if isinstance(config, LongvieConfig) else config
    if problems := config_problems(gate):
        raise LongvieError("invalid promotion config:\n  " + "\n  ".join(problems))
    table = _numbers(models, gate)
    seeds = {name: {seed: _row(f"{name}[seed {seed}]", row) for seed, row in rows.items()}
             for name, rows in (per_seed or {}).items()}
    compared = [CANDIDATE, *gate.baselines, *([CHAMPION] if CHAMPION in table else [])]
    judging = _Judging(gate, table, seeds)
    for metric in gate.metrics:
        lacking = [name for name in compared if table[name].get(metric) is None]
        if lacking:
            judging.reasons.append(f"{metric} is left out of the composite score: no value for "
                                   f"{_and(lacking)}")
        else:
            judging.used.append(metric)
    judging.composite = {name: _composite(table[name], judging.used, gate) for name in compared}
    # A list, not a generator: every baseline is judged, so a challenger gets every reason.
    beats_baselines = all([_beats_baseline(judging, baseline) for baseline in gate.baselines])
    if CHAMPION not in table:
        if beats_baselines:
            judging.reasons.insert(
                0, f"no champion yet: the candidate beats {_and(gate.baselines)} on "
                   f"{_and(gate.must_beat_baselines)} and on the composite score "
                   f"({_scores(judging.composite)})")
        return judging.decision(CHAMPION if beats_baselines else "challenger")
    return _against_champion(judging, beats_baselines)


@dataclass
class _Judging:
    """What the checks of one decision read and collect."""

    gate: PromotionConfig
    table: dict[str, dict[str, float | None]]
    seeds: dict[str, dict[str, dict[str, float | None]]]
    used: list[str] = field(default_factory=list)  # the metrics every compared model has
    composite: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)

    def decision(self, verdict: str) -> Decision:
        return Decision(verdict, self.reasons, self.composite, self.checks, self.comparisons)


def _beats_baseline(judging: _Judging, baseline: str) -> bool:
    """The candidate against one baseline on each must-beat metric and the composite score."""
    gate, candidate = judging.gate, judging.table[CANDIDATE]
    beats = True
    for metric in gate.must_beat_baselines:
        ours, theirs = candidate.get(metric), judging.table[baseline].get(metric)
        if ours is None or theirs is None:
            ok = False
            lacking = _and([n for n, v in ((CANDIDATE, ours), (baseline, theirs)) if v is None])
            judging.reasons.append(f"{metric} cannot show the candidate beats the {baseline} "
                                   f"baseline: no value for {lacking}")
        else:
            comparison = _compare(baseline, metric, ours, theirs,
                                  gate.metrics[metric].direction, judging.seeds, gate)
            judging.comparisons.append(comparison)
            ok = comparison.won
            if not ok:
                judging.reasons.append(
                    f"{metric} {_fmt(ours)} does not beat the {baseline} baseline's "
                    f"{_fmt(theirs)} ({gate.metrics[metric].direction} is better): "
                    f"{comparison.margin()}")
        judging.checks[f"beats_{baseline}.{metric}"] = ok
        beats &= ok
    composite = judging.composite
    comparison = _compare_composite(baseline, composite, judging.used, judging.seeds, gate)
    judging.comparisons.append(comparison)
    if not comparison.won:
        judging.reasons.append(f"composite score {_fmt(composite[CANDIDATE])} does not beat the "
                               f"{baseline} baseline's {_fmt(composite[baseline])}: "
                               f"{comparison.margin()}")
    judging.checks[f"beats_{baseline}.composite"] = comparison.won
    return beats and comparison.won


def _against_champion(judging: _Judging, beats_baselines: bool) -> Decision:
    """With a champion: the composite margin over it, and no metric regressing beyond its
    tolerance."""
    gate, composite = judging.gate, judging.composite
    candidate, champion = judging.table[CANDIDATE], judging.table[CHAMPION]
    ahead = composite[CANDIDATE] - composite[CHAMPION]
    against_champion = _compare_composite(CHAMPION, composite, judging.used, judging.seeds, gate)
    judging.comparisons.append(against_champion)
    beats_margin = ahead > gate.margin and against_champion.won
    judging.checks["beats_champion.composite_margin"] = beats_margin
    regressions = 0
    for metric in judging.used:
        rule = gate.metrics[metric]
        ours, theirs = candidate[metric], champion[metric]
        worse_by = (theirs - ours) if rule.direction == "higher" else (ours - theirs)
        # Exactly the tolerance is allowed: 0.43 - 0.42 must not read as 0.0100000001 > 0.01.
        ok = worse_by <= rule.tolerance or math.isclose(worse_by, rule.tolerance, abs_tol=1e-12)
        judging.checks[f"within_tolerance.{metric}"] = ok
        if not ok:
            regressions += 1
            judging.reasons.append(f"{metric} {_fmt(ours)} regresses beyond tolerance "
                                   f"{_fmt(rule.tolerance)} against the champion's "
                                   f"{_fmt(theirs)} ({rule.direction} is better)")
    needed = max(gate.margin, against_champion.needed)
    if beats_margin:
        verdict = (f"composite score {_fmt(composite[CANDIDATE])} beats the champion's "
                   f"{_fmt(composite[CHAMPION])} by {_fmt(ahead)}, more than the margin "
                   f"{_fmt(gate.margin)} and {_fmt(gate.k_standard_errors)} standard errors "
                   f"({_fmt(against_champion.needed)})")
    else:
        verdict = (f"composite score {_fmt(composite[CANDIDATE])} does not beat the champion's "
                   f"{_fmt(composite[CHAMPION])} by the margin {_fmt(gate.margin)} and "
                   f"{_fmt(gate.k_standard_errors)} standard errors (needs > {_fmt(needed)}, "
                   f"difference {_fmt(ahead)})")
    promoted = beats_baselines and beats_margin and regressions == 0
    if promoted:
        judging.reasons[:0] = [f"the candidate beats {_and(gate.baselines)} on "
                               f"{_and(gate.must_beat_baselines)} and on the composite score",
                               verdict,
                               "no gate metric regresses beyond its tolerance against the "
                               "champion"]
    elif not beats_margin:
        judging.reasons.append(verdict)
    return judging.decision(CHAMPION if promoted else "challenger")


def _compare(against: str, metric: str, ours: float, theirs: float, direction: str,
             seeds: dict[str, dict[str, dict[str, float | None]]],
             gate: PromotionConfig) -> Comparison:
    """The candidate against ``against`` on one metric, judged against k standard errors."""
    sign = 1.0 if direction == "higher" else -1.0

    def values(name: str) -> dict[str, float]:
        return {seed: row[metric] for seed, row in seeds.get(name, {}).items()
                if row.get(metric) is not None}

    return _judged(against, metric, ours, theirs, sign, values(CANDIDATE), values(against), gate)


def _compare_composite(against: str, composite: Mapping[str, float], used: list[str],
                       seeds: dict[str, dict[str, dict[str, float | None]]],
                       gate: PromotionConfig) -> Comparison:
    """The composite scores of the candidate and ``against``, per seed where every used metric
    has a value."""

    def values(name: str) -> dict[str, float]:
        return {seed: _composite(row, used, gate) for seed, row in seeds.get(name, {}).items()
                if all(row.get(metric) is not None for metric in used)}

    return _judged(against, COMPOSITE, composite[CANDIDATE], composite[against], 1.0,
                   values(CANDIDATE), values(against), gate)


def _judged(against: str, metric: str, ours: float, theirs: float, sign: float,
            ours_by_seed: dict[str, float], theirs_by_seed: dict[str, float],
            gate: PromotionConfig) -> Comparison:
    """Standard error of the difference: paired over the seeds both sides share when both were
    sampled more than once; the candidate's alone against a single (deterministic) run; 0 when
    neither has a spread."""
    shared = sorted(set(ours_by_seed) & set(theirs_by_seed))
    if len(shared) >= 2 and len(theirs_by_seed) >= 2:
        spread = [ours_by_seed[s] - theirs_by_seed[s] for s in shared]
    elif len(ours_by_seed) >= 2 and len(theirs_by_seed) <= 1:
        spread = list(ours_by_seed.values())
    else:
        spread = []
    error = statistics.stdev(spread) / math.sqrt(len(spread)) if len(spread) >= 2 else 0.0
    difference = sign * (ours - theirs)
    needed = gate.k_standard_errors * error
    return Comparison(against=against, metric=metric, candidate=ours, other=theirs,
                      difference=difference, standard_error=error, needed=needed,
                      seeds=len(spread) if spread else 1, won=difference > needed)


def composite_scores(models: ModelsTable, config: PromotionConfig) -> dict[str, float]:
    """The composite score of every model in ``models`` over the metrics all of them have."""
    table = {name: _row(name, row) for name, row in models.items()}
    used = [m for m in config.metrics if all(row.get(m) is not None for row in table.values())]
    return {name: _composite(row, used, config) for name, row in table.items()}


def _numbers(models: ModelsTable, config: PromotionConfig) -> dict[str, dict[str, float | None]]:
    """The table's rows as floats (NaN and missing -> None); the needed rows must be there."""
    for key in (CANDIDATE, *config.baselines):
        if key not in models:
            raise LongvieError(f"benchmark table has no {key!r} entry (models.{key}); it holds "
                               f"{_and(list(models)) or 'nothing'}")
    return {name: _row(name, row) for name, row in models.items()}


def _row(name: str, row: Mapping[str, float | None]) -> dict[str, float | None]:
    if not isinstance(row, Mapping):
        raise LongvieError(f"benchmark table entry models.{name} must map metric -> value, "
                           f"not {type(row).__name__}")
    values: dict[str, float | None] = {}
    for metric, value in row.items():
        if value is None:
            values[metric] = None
            continue
        try:
            number = float(value)
        except (TypeError, ValueError) as error:
            raise LongvieError(f"models.{name}.{metric}={value!r} is not a number") from error
        values[metric] = None if math.isnan(number) else number
    return values


def _composite(row: Mapping[str, float | None], used: list[str], config: PromotionConfig) -> float:
    total = 0.0
    for metric in used:
        rule = config.metrics[metric]
        total += rule.weight * (1.0 if rule.direction == "higher" else -1.0) * row[metric]
    return total


def _better(ours: float, theirs: float, direction: str) -> bool:
    return ours > theirs if direction == "higher" else ours < theirs


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _and(names: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _scores(composite: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {_fmt(score)}" for name, score in composite.items())
