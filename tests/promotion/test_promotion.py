"""The promotion gate: when a candidate becomes champion, and how the registry records it.

The gate tests run on constructed benchmark tables; the registry tests on a real MLflow SQLite
store under a temp project root.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from longvie.config.schema import GateMetricConfig, PromotionConfig
from longvie.errors import LongvieError
from longvie.promotion import config_problems, current_champion, decide, promote

STATIC = {"ssim": 0.30, "psnr_db": 18.0, "seam_discontinuity": 0.50, "ssim_drift_slope": -0.020,
          "flicker": 0.90}
NAIVE = {"ssim": 0.35, "psnr_db": 19.0, "seam_discontinuity": 0.40, "ssim_drift_slope": -0.015,
         "flicker": 0.92}
CONTROLS_ONLY = {"ssim": 0.32, "psnr_db": 18.5, "seam_discontinuity": 0.45,
                 "ssim_drift_slope": -0.018, "flicker": 0.91}
CHAMPION = {"ssim": 0.43, "psnr_db": 22.0, "seam_discontinuity": 0.20, "ssim_drift_slope": -0.005,
            "flicker": 0.96}
# Better than the champion on every metric: composite 1.360 against the champion's 1.285.
WINNER = {"ssim": 0.46, "psnr_db": 23.0, "seam_discontinuity": 0.15, "ssim_drift_slope": -0.003,
          "flicker": 0.97}
# Beats the baselines, loses to the champion on every metric.
LOSER = {"ssim": 0.40, "psnr_db": 21.0, "seam_discontinuity": 0.25, "ssim_drift_slope": -0.008,
         "flicker": 0.95}


def table(candidate: dict, champion: dict | None = None) -> dict[str, dict]:
    models = {"candidate": candidate, "static": dict(STATIC), "naive": dict(NAIVE),
              "controls_only": dict(CONTROLS_ONLY)}
    if champion is not None:
        models["champion"] = champion
    return models


GATE = PromotionConfig()


# --- the gate ---------------------------------------------------------------------------------

def test_a_clear_win_over_the_champion_makes_the_candidate_champion():
    decision = decide(table(WINNER, CHAMPION), GATE)
    assert decision.decision == "champion"
    assert decision.composite["candidate"] == pytest.approx(1.36)
    assert decision.composite["champion"] == pytest.approx(1.285)
    assert all(decision.checks.values()) and "beats_champion.composite_margin" in decision.checks
    assert any("beats the champion's 1.285" in reason for reason in decision.reasons)


def test_a_composite_win_with_one_metric_beyond_tolerance_stays_challenger():
    # ssim 0.018 below the champion (tolerance 0.01), made up for by +4 dB PSNR in the composite.
    candidate = {**WINNER, "ssim": 0.412, "psnr_db": 26.0}
    decision = decide(table(candidate, CHAMPION), GATE)
    assert decision.decision == "challenger"
    assert decision.checks["beats_champion.composite_margin"]
    assert not decision.checks["within_tolerance.ssim"]
    assert [name for name, ok in decision.checks.items() if not ok] == ["within_tolerance.ssim"]
    assert ("ssim 0.412 regresses beyond tolerance 0.01 against the champion's 0.43 "
            "(higher is better)") in decision.reasons


def test_a_regression_within_tolerance_does_not_block_promotion():
    candidate = {**WINNER, "ssim": 0.425}  # 0.005 below the champion, tolerance 0.01
    decision = decide(table(candidate, CHAMPION), GATE)
    assert decision.decision == "champion"
    assert decision.checks["within_tolerance.ssim"]


def test_a_tie_within_the_margin_stays_challenger_and_just_beyond_it_wins():
    tie = {**CHAMPION, "psnr_db": 22.1}  # composite +0.002, margin 0.005
    decision = decide(table(tie, CHAMPION), GATE)
    assert decision.decision == "challenger"
    assert any("does not beat the champion's 1.285 by the margin 0.005" in reason
               for reason in decision.reasons)
    assert decision.checks["beats_champion.composite_margin"] is False
    ahead = {**CHAMPION, "psnr_db": 22.5}  # composite +0.010
    assert decide(table(ahead, CHAMPION), GATE).decision == "champion"


def test_without_a_champion_beating_the_baselines_is_enough():
    decision = decide(table(LOSER), GATE)
    assert decision.decision == "champion"
    assert decision.reasons[0].startswith("no champion yet")
    assert set(decision.composite) == {"candidate", "static", "naive", "controls_only"}
    assert decision.checks == {f"beats_{base}.{metric}": True
                               for base in ("static", "naive", "controls_only")
                               for metric in (*GATE.must_beat_baselines, "composite")}


def test_losing_to_the_static_baseline_on_ssim_stays_challenger_and_says_so():
    candidate = {**LOSER, "ssim": 0.29}
    decision = decide(table(candidate), GATE)
    assert decision.decision == "challenger"
    assert not decision.checks["beats_static.ssim"] and not decision.checks["beats_naive.ssim"]
    assert decision.checks["beats_static.seam_discontinuity"]
    assert ("ssim 0.29 does not beat the static baseline's 0.3 (higher is better): "
            "difference -0.01 needs > 0 (one seed, no spread)") in decision.reasons
    assert ("ssim 0.29 does not beat the naive baseline's 0.35 (higher is better): "
            "difference -0.06 needs > 0 (one seed, no spread)") in decision.reasons


def seeded(row: dict, shifts: list[float], metric: str = "ssim") -> dict[str, dict]:
    """Per-seed rows of ``row`` whose ``metric`` is moved by each shift (mean = the row's if the
    shifts sum to 0)."""
    return {str(seed): {**row, metric: row[metric] + shift} for seed, shift in enumerate(shifts)}


def test_a_win_inside_k_standard_errors_is_no_win():
    # Candidate SSIM 0.36 against naive 0.35: +0.01 on the means. Per seed the candidate swings
    # +-0.03 while naive holds still, so the paired differences are 0.04, -0.02, 0.01: SE 0.0173,
    # and k = 2 asks for more than 0.0346.
    candidate = {**LOSER, "ssim": 0.36}
    per_seed = {"candidate": seeded(candidate, [0.03, -0.03, 0.0]),
                "naive": seeded(NAIVE, [0.0, 0.0, 0.0]), "static": {"0": dict(STATIC)}}
    decision = decide(table(candidate), GATE, per_seed)
    assert decision.decision == "challenger"
    assert not decision.checks["beats_naive.ssim"] and decision.checks["beats_static.ssim"]
    ssim_naive = next(c for c in decision.comparisons
                      if c.metric == "ssim" and c.against == "naive")
    assert ssim_naive.difference == pytest.approx(0.01)
    assert ssim_naive.standard_error == pytest.approx(0.03 / 3 ** 0.5 * 1.0, rel=1e-6)
    assert ssim_naive.needed == pytest.approx(2 * ssim_naive.standard_error)
    assert ssim_naive.seeds == 3 and not ssim_naive.won
    assert any(r.startswith("ssim 0.36 does not beat the naive baseline's 0.35 (higher is "
                            "better): difference 0.01 needs > 0.03464 (3 seeds, SE 0.01732)")
               for r in decision.reasons)
    # The same means with bare-mean judging (k = 0) is a win.
    bare = decide(table(candidate), PromotionConfig(k_standard_errors=0.0), per_seed)
    assert bare.checks["beats_naive.ssim"] and bare.decision == "champion"


def test_a_win_beyond_k_standard_errors_counts_and_pairs_the_seeds():
    # Both sides move together with the seed (the same noise helps both): paired differences
    # 0.05, 0.06, 0.04 have SE 0.0058 although each side alone swings by 0.05.
    candidate = {**LOSER, "ssim": 0.40}
    per_seed = {"candidate": seeded(candidate, [0.05, 0.01, -0.06]),
                "naive": seeded(NAIVE, [0.05, 0.0, -0.05]), "static": {"0": dict(STATIC)}}
    decision = decide(table(candidate), GATE, per_seed)
    ssim_naive = next(c for c in decision.comparisons
                      if c.metric == "ssim" and c.against == "naive")
    assert ssim_naive.standard_error == pytest.approx(0.01 / 3 ** 0.5, rel=1e-6)
    assert ssim_naive.won and decision.checks["beats_naive.ssim"]
    # Against the deterministic static video the candidate's own spread is what counts.
    ssim_static = next(c for c in decision.comparisons
                       if c.metric == "ssim" and c.against == "static")
    spread = [0.45, 0.41, 0.34]
    import statistics
    assert ssim_static.standard_error == pytest.approx(statistics.stdev(spread) / 3 ** 0.5)


def test_the_champion_must_be_beaten_by_the_margin_and_k_standard_errors():
    per_seed = {"candidate": seeded(WINNER, [0.06, -0.06, 0.0]),
                "champion": seeded(CHAMPION, [0.0, 0.0, 0.0]),
                "naive": seeded(NAIVE, [0.0, 0.0, 0.0]), "static": {"0": dict(STATIC)}}
    # The composite lead is 0.075 (margin 0.005), but the SSIM swings of +-0.06 per seed make
    # the composite's SE 0.0346: 2 SE = 0.069 < 0.075 still wins; at k = 3 it does not.
    assert decide(table(WINNER, CHAMPION), GATE, per_seed).decision == "champion"
    strict = decide(table(WINNER, CHAMPION), PromotionConfig(k_standard_errors=3.0), per_seed)
    assert strict.decision == "challenger"
    assert not strict.checks["beats_champion.composite_margin"]
    assert any("by the margin 0.005 and 3 standard errors (needs > 0.1039, difference 0.075)"
               in r for r in strict.reasons)


def test_lower_is_better_metrics_must_be_lower_than_the_baselines():
    candidate = {**LOSER, "seam_discontinuity": 0.45}  # better than static 0.50, not naive 0.40
    decision = decide(table(candidate), GATE)
    assert decision.decision == "challenger"
    assert decision.checks["beats_static.seam_discontinuity"]
    assert not decision.checks["beats_naive.seam_discontinuity"]
    assert any(reason.startswith("seam_discontinuity 0.45 does not beat the naive baseline's 0.4")
               for reason in decision.reasons)


def test_a_missing_metric_is_left_out_of_every_composite_and_named():
    candidate = {**WINNER, "flicker": None}
    champion = {**CHAMPION, "flicker": float("nan")}
    decision = decide(table(candidate, champion), GATE)
    assert decision.decision == "champion"
    assert ("flicker is left out of the composite score: no value for candidate and champion"
            in decision.reasons)
    # 0.46 + 0.02 * 23 - 0.2 * 0.15 + 5 * -0.003, with no flicker term; the same for the others.
    assert decision.composite["candidate"] == pytest.approx(0.875)
    assert decision.composite["static"] == pytest.approx(0.30 + 0.36 - 0.10 - 0.10)
    assert "within_tolerance.flicker" not in decision.checks


def test_a_missing_must_beat_metric_cannot_show_the_candidate_beats_the_baselines():
    decision = decide(table({**LOSER, "ssim_drift_slope": None}), GATE)
    assert decision.decision == "challenger"
    assert ("ssim_drift_slope cannot show the candidate beats the static baseline: no value for "
            "candidate") in decision.reasons


@pytest.mark.parametrize("missing", ["candidate", "static", "naive", "controls_only"])
def test_a_table_without_the_candidate_or_a_baseline_is_an_error_naming_it(missing):
    models = table(WINNER, CHAMPION)
    del models[missing]
    with pytest.raises(LongvieError, match=f"no '{missing}' entry \\(models.{missing}\\)"):
        decide(models, GATE)


def test_a_bad_gate_config_names_its_keys():
    gate = PromotionConfig(must_beat_baselines=["ssim", "fvd"],
                           metrics={"ssim": GateMetricConfig(direction="up", tolerance=-1.0)})
    problems = config_problems(gate)
    assert any(p.startswith("promotion.metrics.ssim.direction='up'") for p in problems)
    assert any(p.startswith("promotion.metrics.ssim.tolerance=-1.0") for p in problems)
    assert any(p.startswith("promotion.must_beat_baselines: 'fvd'") for p in problems)
    with pytest.raises(LongvieError, match="promotion.metrics.ssim.direction"):
        decide(table(WINNER), gate)


def test_the_gate_reads_its_thresholds_from_the_hydra_config(smoke_config):
    models = table(WINNER, CHAMPION)  # ahead of the champion by 0.075
    assert decide(models, smoke_config()).decision == "champion"
    assert decide(models, smoke_config("promotion.margin=0.1")).decision == "challenger"
    strict = smoke_config("promotion.metrics.flicker.tolerance=0.0")
    assert decide(table({**WINNER, "flicker": 0.955}, CHAMPION), strict).decision == "challenger"


# --- the registry -----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An MLflow SQLite store holding the registered model and no version, built once: creating
    the schema takes seconds, copying the file does not."""
    from mlflow import MlflowClient

    from longvie.config import compose
    from longvie.registry import ensure_registered_model

    root = tmp_path_factory.mktemp("store")
    config = compose(["profile=smoke", f"paths.root={root}"])
    ensure_registered_model(MlflowClient(config.mlflow.tracking_uri),
                            config.mlflow.registered_model)
    return root / "mlflow.db"


@pytest.fixture
def registry(smoke_config, tmp_path, monkeypatch, empty_store):
    """A smoke config on its own copy of the store, and a function registering a new version."""
    import shutil

    from mlflow import MlflowClient

    import longvie.tracking as tracking

    monkeypatch.setattr(tracking, "USER_TRACKING_URI", None)
    config = smoke_config()
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    assert config.mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(config.mlflow.tracking_uri)
    name = config.mlflow.registered_model
    source = tmp_path / "model_source"
    source.mkdir()

    def new_version() -> int:
        return int(client.create_model_version(name, str(source)).version)

    return config, client, new_version


def aliases(config, client) -> dict[str, int]:
    return {alias: int(version) for alias, version in
            client.get_registered_model(config.mlflow.registered_model).aliases.items()}


def promotion_tags(config, client, version: int) -> dict[str, str]:
    tags = client.get_model_version(config.mlflow.registered_model, str(version)).tags
    return {key: value for key, value in tags.items() if key.startswith("longvie.promotion.")}


def read_report(config) -> dict:
    return json.loads((Path(config.paths.reports) / "promotion.json").read_text())


def test_the_first_promotion_makes_a_champion_and_writes_the_report(registry):
    config, client, new_version = registry
    assert current_champion(config) is None
    first = new_version()
    returned = promote(config, first, table(WINNER), benchmarked_champion=None,
                       benchmark_stamp="bench-1")
    assert aliases(config, client) == {"champion": first}
    assert current_champion(config) == first
    report = read_report(config)
    assert report == returned
    assert {"decision", "candidate_version", "previous_champion", "reasons", "composite", "checks",
            "models", "decided_at"} <= set(report)
    assert report["decision"] == "champion" and report["candidate_version"] == first
    assert report["previous_champion"] is None and report["models"] == table(WINNER)
    assert report["reasons"][0].startswith("no champion yet")
    tags = promotion_tags(config, client, first)
    assert tags["longvie.promotion.decision"] == "champion"
    assert tags["longvie.promotion.previous_champion"] == "none"
    assert tags["longvie.promotion.benchmark"] == "bench-1"
    assert tags["longvie.promotion.reasons"] == "\n".join(report["reasons"])
    assert json.loads(tags["longvie.promotion.composite"])["candidate"] == pytest.approx(1.36)


def test_a_losing_candidate_becomes_challenger_and_the_champion_stays(registry):
    config, client, new_version = registry
    first, second = new_version(), new_version()
    promote(config, first, table(CHAMPION), benchmarked_champion=None)
    report = promote(config, second, table(LOSER, CHAMPION), benchmarked_champion=first)
    assert report["decision"] == "challenger"
    assert report["previous_champion"] == first and report["champion_version"] == first
    assert aliases(config, client) == {"champion": first, "challenger": second}
    assert promotion_tags(config, client, second)["longvie.promotion.decision"] == "challenger"
    assert promotion_tags(config, client, first)["longvie.promotion.decision"] == "champion"
    assert read_report(config)["candidate_version"] == second


def test_a_winner_replaces_the_champion_which_stays_recorded(registry):
    config, client, new_version = registry
    first, second = new_version(), new_version()
    promote(config, first, table(CHAMPION), benchmarked_champion=None)
    promote(config, second, table({**CHAMPION, "psnr_db": 22.1}, CHAMPION),
            benchmarked_champion=first)
    assert aliases(config, client) == {"champion": first, "challenger": second}
    # The challenger, benchmarked again after more training, now wins: it is no longer challenger.
    report = promote(config, second, table(WINNER, CHAMPION), benchmarked_champion=first)
    assert report["decision"] == "champion" and report["previous_champion"] == first
    assert aliases(config, client) == {"champion": second}
    second_tags = promotion_tags(config, client, second)
    assert second_tags["longvie.promotion.previous_champion"] == str(first)
    assert promotion_tags(config, client, first)["longvie.promotion.superseded_by"] == str(second)
    # A former champion that wins again is no longer marked superseded.
    promote(config, first, table(WINNER, CHAMPION), benchmarked_champion=second)
    assert aliases(config, client) == {"champion": first}
    assert "longvie.promotion.superseded_by" not in promotion_tags(config, client, first)
    assert promotion_tags(config, client, second)["longvie.promotion.superseded_by"] == str(first)


def test_promoting_the_champion_again_changes_nothing(registry):
    config, client, new_version = registry
    first = new_version()
    promote(config, first, table(WINNER), benchmarked_champion=None)
    tags = promotion_tags(config, client, first)
    report = promote(config, first, table(WINNER, WINNER), benchmarked_champion=first)
    assert report["decision"] == "champion" and "already the champion" in report["reasons"][0]
    assert aliases(config, client) == {"champion": first}
    assert promotion_tags(config, client, first) == tags


def test_a_stale_benchmark_is_refused_and_changes_nothing(registry):
    config, client, new_version = registry
    first, second = new_version(), new_version()
    promote(config, first, table(CHAMPION), benchmarked_champion=None)
    report_before = (Path(config.paths.reports) / "promotion.json").read_bytes()
    # The benchmark of `second` started before `first` became champion: it measured no champion.
    with pytest.raises(LongvieError, match="champion changed during the benchmark: rerun the "
                       "benchmark \\(it measured champion none, the registry's champion is now "
                       f"version {first}\\)"):
        promote(config, second, table(WINNER), benchmarked_champion=None)
    assert aliases(config, client) == {"champion": first}
    assert promotion_tags(config, client, second) == {}
    assert (Path(config.paths.reports) / "promotion.json").read_bytes() == report_before


def test_a_promotion_stopped_after_its_alias_moved_is_finished_by_running_it_again(registry):
    """Killed between the alias and the report, the registry already holds the decision: the
    same benchmark's promotion finishes it; another benchmark's is still refused."""
    from longvie.promotion import registry_aliases

    config, client, new_version = registry
    first, second = new_version(), new_version()
    promote(config, first, table(CHAMPION), benchmarked_champion=None, benchmark_stamp="bench-1")
    registry_aliases._apply(client, config.mlflow.registered_model, second, first,
                            table(WINNER, CHAMPION), config, "bench-2", None)  # ... then killed
    assert aliases(config, client) == {"champion": second}
    assert read_report(config)["candidate_version"] == first
    with pytest.raises(LongvieError, match="champion changed during the benchmark"):
        promote(config, second, table(WINNER, CHAMPION), benchmarked_champion=first,
                benchmark_stamp="bench-3")
    report = promote(config, second, table(WINNER, CHAMPION), benchmarked_champion=first,
                     benchmark_stamp="bench-2")
    assert report["decision"] == "champion" and report["previous_champion"] == first
    assert read_report(config) == report
    assert aliases(config, client) == {"champion": second}
    assert promotion_tags(config, client, first)["longvie.promotion.superseded_by"] == str(second)


def test_a_table_and_benchmarked_champion_that_disagree_or_an_unknown_version_are_refused(
        registry):
    config, client, new_version = registry
    first = new_version()
    with pytest.raises(LongvieError, match="benchmarked_champion is None"):
        promote(config, first, table(WINNER, CHAMPION), benchmarked_champion=None)
    with pytest.raises(LongvieError, match="candidate_version=9: .* no such version \\(versions "
                       f"\\[{first}\\]\\)"):
        promote(config, 9, table(WINNER), benchmarked_champion=None)
    assert aliases(config, client) == {}


def _promote_in_child(root: str, version: int, barrier, results, overrides: list) -> None:
    """One promotion process. ``decide`` is slowed so both processes read the alias before
    either moves it, unless the registry lock serialises them."""
    import longvie.promotion.registry_aliases as registry_aliases
    import longvie.tracking as tracking
    from longvie.config import compose

    tracking.USER_TRACKING_URI = None
    config = compose(["profile=smoke", f"paths.root={root}", *overrides])
    current_champion(config)  # imports and opens the store before the race starts
    real_decide = registry_aliases.decide

    def slow_decide(*args, **kwargs):
        time.sleep(1.0)
        return real_decide(*args, **kwargs)

    registry_aliases.decide = slow_decide
    barrier.wait(timeout=60)
    try:
        report = promote(config, version, table(WINNER), benchmarked_champion=None)
        results.put((version, "promoted", report["decision"]))
    except LongvieError as error:
        results.put((version, "refused", str(error)))


def test_two_concurrent_promotions_leave_one_consistent_champion(registry):
    _two_concurrent_promotions(*registry)


def test_two_concurrent_promotions_on_a_postgresql_registry(smoke_config, tmp_path, postgres):
    """The same race with the MLflow tracking and registry store on PostgreSQL."""
    from mlflow import MlflowClient

    from longvie.registry import ensure_registered_model

    url = postgres.database("mlflow_promotions")
    config = smoke_config(f"mlflow.tracking_uri={url}")
    client = MlflowClient(url)
    ensure_registered_model(client, config.mlflow.registered_model)
    source = tmp_path / "model_source"
    source.mkdir()

    def new_version() -> int:
        return int(client.create_model_version(config.mlflow.registered_model,
                                               str(source)).version)

    _two_concurrent_promotions(config, client, new_version, [f"mlflow.tracking_uri={url}"])


def _two_concurrent_promotions(config, client, new_version, overrides=()) -> None:
    versions = [new_version(), new_version()]
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_promote_in_child,
                               args=(config.paths.root, version, barrier, results,
                                     list(overrides)))
               for version in versions]
    for worker in workers:
        worker.start()
    outcomes = sorted((results.get(timeout=120) for _ in workers), key=lambda o: o[1])
    for worker in workers:
        worker.join(timeout=30)
    assert [outcome[1] for outcome in outcomes] == ["promoted", "refused"]
    (winner, _, decision), (loser, _, message) = outcomes
    assert decision == "champion"
    assert message.startswith("champion changed during the benchmark: rerun the benchmark")
    assert aliases(config, client) == {"champion": winner}
    assert read_report(config)["candidate_version"] == winner
    assert promotion_tags(config, client, winner)["longvie.promotion.decision"] == "champion"
    assert promotion_tags(config, client, loser) == {}


def test_a_report_that_cannot_be_written_puts_the_registry_back(registry, monkeypatch):
    """A full disk at the commit point: no alias or tag may describe an unrecorded decision."""
    from longvie.promotion import registry_aliases

    config, client, new_version = registry
    first, second = new_version(), new_version()
    promote(config, first, table(CHAMPION), benchmarked_champion=None)
    before = (aliases(config, client), promotion_tags(config, client, first),
              promotion_tags(config, client, second), read_report(config))

    def full_disk(path, payload):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(registry_aliases, "write_json_atomically", full_disk)
    with pytest.raises(LongvieError, match="No space left on device.*put back"):
        promote(config, second, table(WINNER, CHAMPION), benchmarked_champion=first)
    after = (aliases(config, client), promotion_tags(config, client, first),
             promotion_tags(config, client, second), read_report(config))
    assert after == before


def test_an_unwritable_reports_folder_is_refused_before_the_registry_is_touched(registry):
    from longvie.preflight import OutputNotWritableError
    from longvie.promotion.run import promote_from_benchmark

    config, client, new_version = registry
    first = new_version()
    reports = Path(config.paths.reports)
    reports.parent.mkdir(parents=True, exist_ok=True)
    reports.write_text("a file where the reports folder should be\n")
    with pytest.raises(OutputNotWritableError, match=f"promote: cannot write to {reports}"):
        promote_from_benchmark(config)
    assert aliases(config, client) == {}
    assert promotion_tags(config, client, first) == {}
