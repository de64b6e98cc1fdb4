"""Control signals: globally normalised dense depth and sparse point-map videos per source video."""
