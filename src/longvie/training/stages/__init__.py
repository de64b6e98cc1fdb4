"""The controller stages 1-3: the LightningModule (``module``), their data, the step that trains
one (``run``) and the held-out comparisons that show each stage's mechanism."""
