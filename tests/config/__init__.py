"""The typed config and `compose` (src/longvie/config)."""
