"""Champion/challenger promotion: a pure gate over the benchmark table, applied to the registry.

:func:`decide` says champion or challenger and why; :func:`promote` does so under the registry
lock and moves the aliases, tags the version and writes ``reports/promotion.json``.
"""

from longvie.promotion.gate import Decision, composite_scores, config_problems, decide
from longvie.promotion.registry_aliases import current_champion, promote, registry_lock

__all__ = ["Decision", "composite_scores", "config_problems", "current_champion", "decide",
           "promote", "registry_lock"]
