"""The generator: Wan I2V backbone, dual controller, caption encoders, degradations, losses."""
