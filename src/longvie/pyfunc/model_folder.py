"""Write a weights folder as an MLflow pyfunc model folder: the registry's unit.

The folder holds ``MLmodel`` (``python_function`` flavour, model from code: ``entry.py``), the
weights folder as the ``weights`` artifact, this package's source as its code, the pinned
requirements, a signature and an input example (a one-clip request built from a grey frame and
flat controls, small enough to read in the MLflow UI and to send as a first request).
"""

from __future__ import annotations

import base64
import io
import shutil
import tempfile
from pathlib import Path

import numpy as np

from longvie.config import LongvieConfig
from longvie.config.schema import GenerationConfig, VideoConfig
from longvie.pyfunc.fields import INTEGER_FIELDS, MEDIA, TEXT_FIELDS
from longvie.pyfunc.spec import serving_spec

# The model file MLflow runs to load a version: the serving runtime's (referenced, not imported).
ENTRY = Path(__file__).resolve().parents[1] / "serving" / "entry.py"
WEIGHTS = "weights"


def signature(generation: GenerationConfig):
    """Inputs (one request per row), params (the sampler, defaulting to ``generation``'s) and
    outputs of the served model."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema(
        [ColSpec("string", name, required=False) for name in MEDIA]
        + [ColSpec("string", f"{name}_path", required=False) for name in MEDIA]
        + [ColSpec("string", name, required=False) for name in TEXT_FIELDS]
        + [ColSpec("long", name, required=False) for name in INTEGER_FIELDS])
    params = ParamSchema([
        ParamSpec("seed", "long", generation.seed),
        ParamSpec("steps", "long", generation.steps),
        ParamSpec("shift", "double", float(generation.shift)),
        ParamSpec("guidance", "double", float(generation.guidance)),
        ParamSpec("solver", "string", generation.solver),
        ParamSpec("history_frames", "long", generation.history_frames),
    ])
    outputs = Schema([ColSpec("string", "video"), ColSpec("long", "frames"),
                      ColSpec("long", "width"), ColSpec("long", "height"),
                      ColSpec("long", "fps"), ColSpec("double", "seconds")])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def example_request(video: VideoConfig) -> dict[str, str | int]:
    """One clip at the profile's size: a grey first frame, a depth ramp, an empty point map."""
    from PIL import Image

    from longvie.video.io import VideoWriter

    height, width, frames = video.height, video.width, video.clip_frames
    png = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(png, format="PNG")
    ramp = np.repeat(np.linspace(0, 255, width, dtype=np.uint8)[None, :, None], 3, axis=2)
    with tempfile.TemporaryDirectory() as folder:
        encoded = {}
        for name, frame in (("depth_video", np.broadcast_to(ramp, (height, width, 3))),
                            ("point_map_video", np.zeros((height, width, 3), np.uint8))):
            path = Path(folder) / f"{name}.mp4"
            with VideoWriter(path, video.fps, width, height) as writer:
                for _ in range(frames):
                    writer.write(np.ascontiguousarray(frame))
            encoded[name] = base64.b64encode(path.read_bytes()).decode("ascii")
    return {"first_frame": base64.b64encode(png.getvalue()).decode("ascii"), **encoded,
            "caption": "a grey room", "frames": frames}


def requirements() -> list[str]:
    """This package's pinned direct requirements (what ``pip install longvie`` installs)."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        pinned = requires("longvie") or []
    except PackageNotFoundError:
        pinned = []
    return [r for r in pinned if "extra ==" not in r]


def save_pyfunc_model(config: LongvieConfig, weights_dir: Path, out_dir: Path) -> Path:
    """Write ``weights_dir`` as a pyfunc model folder at ``out_dir`` (which must not exist)."""
    import mlflow.pyfunc
    import pandas as pd

    package = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="longvie-code-") as code:
        source = Path(code) / package.name
        shutil.copytree(package, source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        mlflow.pyfunc.save_model(
            path=str(out_dir),
            python_model=str(ENTRY),
            artifacts={WEIGHTS: str(weights_dir)},
            model_config=serving_spec(config),
            code_paths=[str(source)],
            pip_requirements=requirements(),
            signature=signature(config.generation),
            input_example=pd.DataFrame([example_request(config.video)]),
        )
    return out_dir


def weights_of(model_dir: Path) -> Path:
    """The weights folder inside a downloaded pyfunc model folder, as its ``MLmodel`` names it
    (a plain weights folder is returned as it is)."""
    import yaml

    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        return model_dir
    flavour = yaml.safe_load(mlmodel.read_text())["flavors"]["python_function"]
    return model_dir / flavour["artifacts"][WEIGHTS]["path"]
