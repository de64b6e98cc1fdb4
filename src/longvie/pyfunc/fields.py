"""The fields of one request row to the served model: what the logged model's signature
declares and what :mod:`longvie.serving.request` reads."""

from __future__ import annotations

# The media fields: name -> (file suffix, what it holds).
MEDIA = {
    "first_frame": (".png", "a PNG or JPEG image"),
    "depth_video": (".mp4", "a depth video (grey, dark = near)"),
    "depth": (".npy", "a NumPy .npy array (T, H, W) of raw depth (larger = farther)"),
    "point_map_video": (".mp4", "a point-map video"),
}
TEXT_FIELDS = ("caption",)
INTEGER_FIELDS = ("frames",)
