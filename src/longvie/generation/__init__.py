"""Long-video generation: clip by clip, each conditioned on the last generated frame."""
