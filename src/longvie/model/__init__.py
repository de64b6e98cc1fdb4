"""Training-side model pieces: degradations of the controls and conditioning frame, and losses."""
