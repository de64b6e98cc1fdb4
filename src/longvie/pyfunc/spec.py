"""What a logged model keeps of the configuration it was trained with (its ``model_config``),
and the :class:`ModelConfig` read back from it."""

from __future__ import annotations

import dataclasses
from typing import Any

from longvie.config.schema import ModelConfig


def serving_spec(config) -> dict[str, Any]:
    """What the logged model keeps of a ``LongvieConfig`` (its ``model_config``)."""
    model = dataclasses.asdict(config.model)
    model["pretrained"] = ""  # the weights are the model's own artifact
    video = config.video
    generation = config.generation
    return {
        "profile": config.profile_name,
        "model": model,
        "video": {"fps": video.fps, "clip_frames": video.clip_frames, "width": video.width,
                  "height": video.height},
        "sampler": {"seed": generation.seed, "steps": generation.steps,
                    "shift": generation.shift, "guidance": generation.guidance,
                    "solver": generation.solver, "history_frames": generation.history_frames,
                    "colour_anchor": generation.colour_anchor,
                    "frame_memory": generation.frame_memory,
                    "unified_noise": generation.unified_noise},
        "max_frames": config.serving.max_frames,
    }


def model_config_of(spec: dict[str, Any]):
    """The :class:`ModelConfig` a spec was written from."""
    from omegaconf import OmegaConf

    merged = OmegaConf.merge(OmegaConf.structured(ModelConfig), spec["model"])
    return OmegaConf.to_object(merged)
