"""Rendered scenes, curation, DVC and the data version (synth, curation, data_version)."""
