"""Long-video generation (src/longvie/generation)."""
