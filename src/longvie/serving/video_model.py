"""The registered generator as an MLflow ``python_function`` model.

Logged from code (``serving/entry.py``), so nothing is pickled: the weights folder (safetensors /
diffusers parts) is the model's ``weights`` artifact, and what the model needs from the project's
config travels as the model's ``model_config`` (the model section, the video size and frame rate,
the sampler's defaults and the request limit). A process with only this package installed and
the tracking URI set loads it with ``mlflow.pyfunc.load_model("models:/longvie@champion")``.

``predict`` takes request rows (:mod:`longvie.serving.request`) and returns, per row, the mp4
base64-encoded with its frame count, size, frame rate and seconds. The sampler settings come as
MLflow params (``seed``, ``steps``, ``shift``, ``guidance``, ``solver``, ``history_frames``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import mlflow.pyfunc

from longvie.errors import LongvieError
from longvie.generation.plan import plan_clips
from longvie.generation.run import GenerationInputs, write_long_video
from longvie.pyfunc.spec import model_config_of
from longvie.serving.request import RequestError, parse_request, read_first_frame, request_controls

SAMPLER_PARAMS = ("seed", "steps", "shift", "guidance", "solver", "history_frames")
OUTPUT_COLUMNS = ("video", "frames", "width", "height", "fps", "seconds")


class LongvieVideoModel(mlflow.pyfunc.PythonModel):
    """First frame + dense and sparse controls + caption -> a generated long video (mp4)."""

    def load_context(self, context) -> None:
        from longvie.model.folder import load_generator

        self.spec = dict(context.model_config)
        self.weights = Path(context.artifacts["weights"])
        self.parts = load_generator(str(self.weights), model_config_of(self.spec),
                                    with_controller=False)

    def predict(self, context, model_input, params: dict[str, Any] | None = None):
        import pandas as pd
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        try:
            rows = _rows(model_input)
            sampler = self._sampler(params or {})
            results = [self._generate(row, sampler) for row in rows]
        except LongvieError as error:
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None
        return pd.DataFrame(results, columns=list(OUTPUT_COLUMNS))

    def _sampler(self, params: dict[str, Any]):
        from longvie.generation.long_video import GenerationSettings

        values = dict(self.spec["sampler"])
        for name, value in params.items():
            if name not in SAMPLER_PARAMS:
                raise RequestError(f"params.{name}", "is not a sampler setting (settings: "
                                   f"{', '.join(SAMPLER_PARAMS)})")
            if value is not None:
                values[name] = value
        if values["solver"] not in ("euler", "unipc"):
            raise RequestError("params.solver", f"must be 'euler' or 'unipc', got "
                               f"{values['solver']!r}")
        for name, least in (("steps", 1), ("history_frames", 0), ("seed", 0)):
            value = values[name]
            if int(value) != value or value < least:
                raise RequestError(f"params.{name}",
                                   f"must be a whole number >= {least}, got {value!r}")
        return GenerationSettings(steps=int(values["steps"]), shift=float(values["shift"]),
                                  guidance=float(values["guidance"]),
                                  history_frames=int(values["history_frames"]),
                                  seed=int(values["seed"]), solver=values["solver"],
                                  sparse_control=model_config_of(self.spec).sparse_control,
                                  # Models logged before these were kept sample without them.
                                  colour_anchor=bool(values.get("colour_anchor", False)),
                                  frame_memory=bool(values.get("frame_memory", False)),
                                  unified_noise=bool(values.get("unified_noise", True)))

    def _generate(self, row: dict[str, Any], sampler) -> dict[str, Any]:
        import base64
        import tempfile

        video = self.spec["video"]
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="longvie-request-") as folder:
            inputs = checked_inputs(row, Path(folder), video["clip_frames"],
                                    self.spec["max_frames"])
            output = Path(folder) / "generated.mp4"
            write_long_video(self.parts, inputs, sampler, output, video["fps"],
                             video["clip_frames"], self.spec["model"]["condition_encoding"],
                             progress=False)
            encoded = base64.b64encode(output.read_bytes()).decode("ascii")
        height, width = inputs.first_frame.shape[:2]
        return {"video": encoded, "frames": inputs.frames, "width": width, "height": height,
                "fps": video["fps"], "seconds": round(time.perf_counter() - started, 3)}


def checked_inputs(row: dict[str, Any], folder: Path, clip_frames: int, max_frames: int):
    """A request row as :class:`GenerationInputs`, every check done before any generation."""

    request = parse_request(row, folder)
    first = read_first_frame(request.first_frame)
    controls = request_controls(request)
    size = controls.span(0, 1)[0].shape[1:]
    if first.shape[:2] != tuple(size):
        raise RequestError("first_frame", f"is {first.shape[1]}x{first.shape[0]} but the "
                           f"controls are {size[1]}x{size[0]}")
    frames = request.frames or controls.num_frames
    if frames > controls.num_frames:
        raise RequestError("frames", f"{frames} asked, but the controls have only "
                           f"{controls.num_frames} frames")
    if frames > max_frames:
        raise RequestError("frames", f"{frames} is more than this model serves in one request "
                           f"({max_frames}, serving.max_frames)")
    try:
        plan_clips(frames, clip_frames)
    except LongvieError as error:
        raise RequestError("frames", str(error)) from error
    return GenerationInputs(controls, first, [request.caption], frames, "request")


def _rows(model_input) -> list[dict[str, Any]]:
    """Request rows from a DataFrame, a dict (one request) or a list of dicts."""
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        rows = model_input.to_dict(orient="records")
    elif isinstance(model_input, dict):
        rows = [model_input]
    elif isinstance(model_input, list) and all(isinstance(r, dict) for r in model_input):
        rows = list(model_input)
    else:
        raise RequestError("request", f"must be records of request fields, got "
                           f"{type(model_input).__name__}")
    if not rows:
        raise RequestError("request", "holds no request")
    return rows
