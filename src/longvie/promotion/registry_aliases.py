"""Apply the gate's verdict to the MLflow registry: aliases, version tags and ``promotion.json``.

Two promotions at once must not leave the registry inconsistent. Each one holds an inter-process
file lock (the ``registry`` step lock, ``<paths.models>/.locks/registry.lock``) from reading the
``champion`` alias to writing the report, and refuses when the alias is no longer the champion
its benchmark measured: the second of two concurrent promotions sees the first one's champion and
asks for a new benchmark instead of comparing against a model that is no longer the champion.

Write order, so that a crash at any point never leaves an alias on a version whose tags say
otherwise: (1) drop the ``challenger`` alias if it is on a candidate about to become champion,
(2) the candidate's ``longvie.promotion.*`` tags, (3) the alias of the decision, (4) the
``superseded_by`` tag of the replaced champion, (5) ``reports/promotion.json``. A crash after
(2) leaves tags that no alias contradicts yet; the report, written last, only ever describes a
decision the registry already holds. Rerunning the promotion repairs any of these states (one
stopped after its alias moved is recognised by the candidate's tags: the same benchmark stamp
and previous champion, so it is finished, not refused as a champion that changed). When
the report cannot be written (a full disk; an unwritable folder is refused before the lock by
the step's preflight) the aliases and tags are put back as they were.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from longvie.atomic import write_json_atomically
from longvie.config import LongvieConfig
from longvie.errors import LongvieError
from longvie.promotion.gate import CHAMPION, ModelsTable, SeedTable, composite_scores, decide
from longvie.registry import alias_version, current_champion, held_versions
from longvie.step_lock import step_lock
from longvie.tracking import tracking_client, tracking_uri

CHALLENGER = "challenger"
REPORT_NAME = "promotion.json"
TAG = "longvie.promotion."
# Model version tag values are capped by the store; the full reasons are in the report.
REASONS_TAG_LIMIT = 5000


@contextmanager
def registry_lock(config: LongvieConfig) -> Iterator[Path]:
    """Hold the root's ``registry`` step lock (across processes) while the aliases change; a
    second promotion queues behind it for ``promotion.lock_timeout_s``."""

    with step_lock(config, "registry", config.promotion.lock_timeout_s,
                   "promotion.lock_timeout_s") as path:
        yield path


def promote(config: LongvieConfig, candidate_version: int, models_table: ModelsTable, *,
            benchmarked_champion: int | None, benchmark_stamp: str | None = None,
            per_seed: SeedTable | None = None) -> dict[str, Any]:
    """Decide champion or challenger for ``candidate_version`` and record it; returns the report.

    ``benchmarked_champion`` is the version whose metrics are ``models_table['champion']`` (None
    when the benchmark found no champion). If the ``champion`` alias has moved since, nothing is
    changed and LongvieError asks for a new benchmark. ``benchmark_stamp`` (e.g. the benchmark
    run id or report hash) is recorded to trace the decision to its measurements; ``per_seed``
    (the benchmark's figures per sampler seed) gives the gate its standard errors.
    """

    name = config.mlflow.registered_model
    client = tracking_client(config)
    candidate = int(candidate_version)
    _require_version(client, name, candidate, tracking_uri(config))
    _check_table(models_table, benchmarked_champion, candidate)
    with registry_lock(config):
        champion = alias_version(client, name, CHAMPION)
        if champion == candidate != benchmarked_champion and _decided_by(
                client, name, candidate, benchmarked_champion, benchmark_stamp):
            # This very promotion moved the alias and was stopped before its report: finish it.
            champion = benchmarked_champion
        if champion != benchmarked_champion:
            raise LongvieError(
                "champion changed during the benchmark: rerun the benchmark (it measured "
                f"champion {_version_text(benchmarked_champion)}, the registry's champion is now "
                f"{_version_text(champion)})")
        if champion == candidate:
            report = _already_champion(client, name, candidate, models_table, config)
            report["benchmark_stamp"] = benchmark_stamp
            write_json_atomically(Path(config.paths.reports) / REPORT_NAME, report)
            return report
        before = RegistryState.read(client, name, [candidate, champion])
        try:
            report = _apply(client, name, candidate, champion, models_table, config,
                            benchmark_stamp, per_seed)
            report["benchmark_stamp"] = benchmark_stamp
            write_json_atomically(Path(config.paths.reports) / REPORT_NAME, report)
        except BaseException as error:
            # The registry must not hold a decision its report does not: put it back.
            before.restore(client, name)
            if isinstance(error, OSError):
                raise LongvieError(
                    f"could not write {Path(config.paths.reports) / REPORT_NAME} "
                    f"({error.strerror or error}); the registry's aliases and tags were put "
                    "back as they were") from error
            raise
    return report


@dataclasses.dataclass
class RegistryState:
    """The aliases of the registered model and the promotion tags of some versions, to put
    back when a promotion cannot finish."""

    aliases: dict[str, int]
    tags: dict[int, dict[str, str]]

    @classmethod
    def read(cls, client, name: str, versions: list[int | None]) -> RegistryState:
        try:
            held = client.get_registered_model(name).aliases
        except Exception:  # noqa: BLE001 - a model with no version yet has no aliases
            held = {}
        tags = {v: {k: t for k, t in client.get_model_version(name, str(v)).tags.items()
                    if k.startswith(TAG)} for v in versions if v is not None}
        return cls({alias: int(v) for alias, v in held.items()}, tags)

    def restore(self, client, name: str) -> None:
        now = client.get_registered_model(name).aliases
        for alias in set(now) - set(self.aliases):
            client.delete_registered_model_alias(name, alias)
        for alias, version in self.aliases.items():
            if int(now.get(alias, -1)) != version:
                client.set_registered_model_alias(name, alias, version)
        for version, tags in self.tags.items():
            current = client.get_model_version(name, str(version)).tags
            for key in [k for k in current if k.startswith(TAG) and k not in tags]:
                client.delete_model_version_tag(name, str(version), key)
            for key, value in tags.items():
                if current.get(key) != value:
                    client.set_model_version_tag(name, str(version), key, value)


def _apply(client, name: str, candidate: int, champion: int | None, models: ModelsTable,
           config: LongvieConfig, benchmark_stamp: str | None,
           per_seed: SeedTable | None) -> dict[str, Any]:
    """Decide, then write in the order the module docstring gives (tags before aliases)."""
    decision = decide(models, config.promotion, per_seed)
    decided_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    promoted = decision.decision == CHAMPION
    if promoted and alias_version(client, name, CHALLENGER) == candidate:
        client.delete_registered_model_alias(name, CHALLENGER)
    reasons = "\n".join(decision.reasons)
    if len(reasons) > REASONS_TAG_LIMIT:
        reasons = reasons[:REASONS_TAG_LIMIT - 1] + "…"
    tags = {
        "decision": decision.decision,
        "reasons": reasons,
        "composite": json.dumps({key: round(score, 6)
                                 for key, score in decision.composite.items()}),
        "previous_champion": _tag_text(champion),
        "decided_at": decided_at,
        **({"benchmark": benchmark_stamp} if benchmark_stamp is not None else {}),
    }
    held = client.get_model_version(name, str(candidate)).tags
    # Tags of an earlier decision on this version that would contradict this one.
    stale = [key for key in ("benchmark", *(["superseded_by"] if promoted else []))
             if key not in tags and TAG + key in held]
    for key in stale:
        client.delete_model_version_tag(name, str(candidate), TAG + key)
    for key, value in tags.items():
        client.set_model_version_tag(name, str(candidate), TAG + key, value)
    client.set_registered_model_alias(name, CHAMPION if promoted else CHALLENGER, candidate)
    if promoted and champion is not None:
        client.set_model_version_tag(name, str(champion), TAG + "superseded_by", str(candidate))
    return {
        "decision": decision.decision,
        "candidate_version": candidate,
        "previous_champion": champion,
        "champion_version": candidate if promoted else champion,
        "registered_model": name,
        "reasons": decision.reasons,
        "composite": decision.composite,
        "checks": decision.checks,
        "k_standard_errors": config.promotion.k_standard_errors,
        "comparisons": [dataclasses.asdict(c) for c in decision.comparisons],
        "models": _plain(models),
        "decided_at": decided_at,
    }


def _already_champion(client, name: str, candidate: int, models: ModelsTable,
                      config: LongvieConfig) -> dict[str, Any]:
    """A rerun whose candidate is the champion already (training reused its version): the
    registry stays as it is, and the report says so instead of the candidate losing a tie
    against itself."""
    tags = client.get_model_version(name, str(candidate)).tags
    previous = tags.get(TAG + "previous_champion", "none")
    return {
        "decision": CHAMPION,
        "candidate_version": candidate,
        "previous_champion": int(previous) if previous.isdigit() else None,
        "champion_version": candidate,
        "registered_model": name,
        "reasons": [f"version {candidate} is already the champion: the registry is unchanged"],
        "composite": composite_scores(models, config.promotion),
        "checks": {},
        "models": _plain(models),
        "decided_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _decided_by(client, name: str, candidate: int, benchmarked_champion: int | None,
                benchmark_stamp: str | None) -> bool:
    """Whether the candidate's promotion tags record a decision on this benchmark (the same
    stamp, the same previous champion): the registry then holds this promotion, whole or
    stopped between its alias and its report, not another one that moved the champion."""
    tags = client.get_model_version(name, str(candidate)).tags
    return (benchmark_stamp is not None
            and tags.get(TAG + "benchmark") == benchmark_stamp
            and tags.get(TAG + "previous_champion") == _tag_text(benchmarked_champion))


def _tag_text(version: int | None) -> str:
    return "none" if version is None else str(version)


def _require_version(client, name: str, version: int, uri: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, str(version))
    except MlflowException as error:
        raise LongvieError(f"candidate_version={version}: registered model {name!r} has no such "
                           f"version (versions {held_versions(client, name) or 'none'}) in "
                           f"{uri}") from error


def _check_table(models: ModelsTable, benchmarked_champion: int | None, candidate: int) -> None:
    """The table's ``champion`` row and ``benchmarked_champion`` must describe the same thing
    (a champion that is the candidate itself has no row of its own)."""
    if benchmarked_champion is None and CHAMPION in models:
        raise LongvieError("the benchmark table has a 'champion' entry (models.champion) but "
                           "benchmarked_champion is None: pass the version it measured")
    if benchmarked_champion not in (None, candidate) and CHAMPION not in models:
        raise LongvieError(f"benchmarked_champion={benchmarked_champion} but the benchmark table "
                           "has no 'champion' entry (models.champion)")


def _plain(models: ModelsTable) -> dict[str, dict[str, float | None]]:
    """The table as JSON can hold it: NaN becomes null."""
    def clean(value: float | None) -> float | None:
        return None if value is None or math.isnan(float(value)) else float(value)

    return {name: {metric: clean(value) for metric, value in row.items()}
            for name, row in models.items()}


def _version_text(version: int | None) -> str:
    return "none" if version is None else f"version {version}"


__all__ = ["current_champion", "promote", "registry_lock"]
