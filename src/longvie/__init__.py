"""longvie: train, benchmark and ship a LongVie-2-style controllable long-video generator."""

__version__ = "0.1.0"
