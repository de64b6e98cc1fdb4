"""``longvie synth``: deterministic rendered long videos with full 3-D ground truth.

Each video is an mp4 plus ``.gt.npz`` (depth, object ids, camera and mesh poses, the meshes
themselves and grid point tracks) and a ``.json`` caption/metadata sidecar.
"""

from longvie.synth.dataset import SynthError, fingerprint, render_dataset
from longvie.synth.groundtruth import GroundTruth, load_groundtruth, query_tracks, track_points
from longvie.synth.render import RenderedVideo, render_video

__all__ = [
    "GroundTruth",
    "RenderedVideo",
    "SynthError",
    "fingerprint",
    "load_groundtruth",
    "query_tracks",
    "render_dataset",
    "render_video",
    "track_points",
]
