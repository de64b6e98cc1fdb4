"""The served model samples as ``longvie generate`` does with the configuration it was logged
with: every sampler setting of the profile travels in its ``model_config``."""

from __future__ import annotations

import pytest

from longvie.config import compose
from longvie.generation.long_video import GenerationSettings
from longvie.pyfunc.spec import serving_spec
from longvie.serving.video_model import LongvieVideoModel


@pytest.mark.parametrize("profile", ["tiny", "smoke", "wan14b"])
def test_the_served_sampler_is_the_profiles_generation_sampler(profile):
    config = compose([f"profile={profile}"])
    model = LongvieVideoModel()
    model.spec = serving_spec(config)
    expected = GenerationSettings.from_config(config.generation,
                                              sparse_control=config.model.sparse_control)
    assert model._sampler({}) == expected


def test_a_model_logged_before_the_long_video_settings_samples_as_it_did():
    spec = serving_spec(compose(["profile=tiny"]))
    for name in ("colour_anchor", "frame_memory", "unified_noise"):
        del spec["sampler"][name]
    model = LongvieVideoModel()
    model.spec = spec
    sampler = model._sampler({})
    assert (sampler.colour_anchor, sampler.frame_memory, sampler.unified_noise) == (
        False, False, True)
