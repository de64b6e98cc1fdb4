"""The promotion gate and the registry (src/longvie/promotion, registry)."""
