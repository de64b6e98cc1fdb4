"""Curation: raw videos of any container → fixed-length clips at the profile's fps and size."""

from longvie.curation.run import CurationError, curate

__all__ = ["CurationError", "curate"]
