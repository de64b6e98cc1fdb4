"""``longvie promote``: the gate applied to the last benchmark's table.

The benchmark report names the candidate version and the champion it measured; the promotion
refuses if either is missing or the champion moved since (see ``registry_aliases.promote``).
"""

from __future__ import annotations

import json
from pathlib import Path

from longvie.benchmark.run import REPORT
from longvie.config import LongvieConfig
from longvie.errors import LongvieError
from longvie.promotion.registry_aliases import promote
from longvie.step_lock import locked_step


@locked_step("promote", writes=lambda c: [c.paths.reports], tracked=True)
def promote_from_benchmark(config: LongvieConfig) -> dict:
    path = Path(config.paths.reports) / REPORT
    if not path.is_file():
        raise LongvieError(f"{path} does not exist: run `longvie benchmark` first")
    report = json.loads(path.read_text())
    if report.get("candidate_version") is None:
        raise LongvieError(f"{path}: the benchmarked candidate {report.get('candidate_model')} "
                           "is a folder, not a registered version; only versions are promoted")
    return promote(config, report["candidate_version"], report["models"],
                   benchmarked_champion=report["champion_version"],
                   benchmark_stamp=report.get("mlflow_run_id") or report["stamp"],
                   per_seed=report.get("per_seed"))
