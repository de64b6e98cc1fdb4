"""How steps run: the jobs' executor, and training in the step's process or through Dagster Pipes.

The executor is fixed when the code location loads (Dagster needs it in ``Definitions``), so it
comes from the config composed without overrides (``orchestration.executor``,
``orchestration.max_concurrent``); ``LONGVIE_EXECUTOR`` overrides the kind for one deployment
without editing ``conf/``. (The launchpad's overrides reach the ``longvie`` resource, not this:
they are chosen per run, after the code location has loaded.) Where runs are launched (k8s,
celery) and stored (PostgreSQL) is the Dagster instance's ``dagster.yaml``: docs/scale_out.md.

``orchestration.training_launch: pipes`` runs ``<launch_command> train stage=<stage>
<overrides>`` as a subprocess through Dagster Pipes: the child (``longvie train``, see
``longvie.cli``) trains, logs and reports the materialisation itself, so a launcher such as
``torchrun`` or Lightning's own per-GPU processes work, which they cannot inside a Dagster step.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster._core.errors import DagsterPipesExecutionError  # raised by client.run; not exported

from longvie.config import compose

EXECUTOR_ENV = "LONGVIE_EXECUTOR"
EXECUTOR_KINDS = ("in_process", "multiprocess")


def executor_for(kind: str, max_concurrent: int = 0) -> dg.ExecutorDefinition:
    """The Dagster executor of ``orchestration.executor`` / ``max_concurrent``."""
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "multiprocess":
        if max_concurrent < 0:
            raise ValueError(f"orchestration.max_concurrent={max_concurrent} must be >= 0 "
                             "(0 = one per CPU core)")
        return dg.multiprocess_executor.configured(
            {"max_concurrent": max_concurrent}, name="multiprocess")
    raise ValueError(f"orchestration.executor={kind!r} must be one of {EXECUTOR_KINDS}")


def code_location_executor(overrides: tuple[str, ...] = ()) -> dg.ExecutorDefinition:
    """The executor ``Definitions`` gets: the config composed without overrides (``overrides``
    are for tests), with ``LONGVIE_EXECUTOR`` (in_process | multiprocess) overriding its kind."""

    settings = compose(overrides).orchestration
    kind = os.environ.get(EXECUTOR_ENV) or str(settings.executor)
    if kind not in EXECUTOR_KINDS:
        raise ValueError(f"{EXECUTOR_ENV}={kind!r} must be one of {EXECUTOR_KINDS}")
    return executor_for(kind, settings.max_concurrent)


def dagster_metadata(metadata: Mapping[str, Mapping[str, Any]]) -> dict[str, dg.MetadataValue]:
    """Pipes wire-format metadata (``longvie.steps.training_metadata``) as Dagster values, the
    types the Pipes session gives the same dict on the other path."""
    makers = {"path": dg.MetadataValue.path, "md": dg.MetadataValue.md,
              "text": dg.MetadataValue.text, "int": dg.MetadataValue.int,
              "float": dg.MetadataValue.float}
    return {key: makers[value["type"]](value["raw_value"]) for key, value in metadata.items()}


def training_command(launch_command: list[str], stage: str, overrides: list[str]) -> list[str]:
    """``<launch_command> train stage=<stage> <overrides>``; the default prefix runs this Python."""
    prefix = list(launch_command) or [sys.executable, "-m", "longvie"]
    return [*prefix, "train", f"stage={stage}", *overrides]


class _HandlerKeepingReader(dg.PipesTempFileMessageReader):
    """The default temp-file reader, keeping the session's message handler so the custom
    messages of a child that failed (``{"error": ...}``) can still be read."""

    handler = None

    @contextmanager
    def read_messages(self, handler) -> Iterator[Mapping[str, Any]]:
        self.handler = handler
        with super().read_messages(handler) as params:
            yield params


def train_through_pipes(context: dg.AssetExecutionContext, stage: str, overrides: list[str],
                        launch_command: list[str], tags: dict[str, str],
                        tracking_uri: str) -> dg.MaterializeResult:
    """Run ``longvie train stage=<stage>`` as a Pipes subprocess and return the materialisation
    it reported. A failed child fails the step with the child's own error message.

    The child gets the parent's MLflow tracking URI explicitly: MLflow exports
    ``MLFLOW_TRACKING_URI`` into the environment of a process that set one, so an inherited value
    could be another store than the one the parent links the run in."""
    command = training_command(launch_command, stage, overrides)
    context.log.info(f"training through Dagster Pipes: {' '.join(command)}")
    reader = _HandlerKeepingReader()
    client = dg.PipesSubprocessClient(
        message_reader=reader,
        env={"PYTHONUNBUFFERED": "1", "MLFLOW_TRACKING_URI": tracking_uri})
    try:
        invocation = client.run(command=command, context=context, extras={"mlflow_tags": tags})
    except FileNotFoundError as error:
        raise dg.Failure(allow_retries=False,
                         description=f"training launch command not found: {command[0]!r} "
                         "(orchestration.launch_command)") from error
    except DagsterPipesExecutionError as error:  # the child exited with a non-zero code
        messages = reader.handler.get_custom_messages() if reader.handler is not None else ()
        errors = [m["error"] for m in messages if isinstance(m, Mapping) and "error" in m]
        raise dg.Failure(
            description=errors[-1] if errors else
            f"{error}: the training subprocess reported no error; see its stderr in the step's "
            f"logs ({' '.join(command)})",
            metadata={"command": " ".join(command)},
        ) from error
    return invocation.get_materialize_result()
