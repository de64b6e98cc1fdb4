"""Control extraction: depth, tracks, normalisation, splats (src/longvie/controls)."""
