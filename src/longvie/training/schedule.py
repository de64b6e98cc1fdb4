"""The learning-rate schedule of ``longvie pretrain``: linear warm-up, then cosine decay.

Lightning checkpoints the scheduler with the optimizer, so a resumed run continues the curve.
"""

from __future__ import annotations

import math

import torch


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                  final_fraction: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Rate x min(1, step / warm-up), then cosine from 1 down to ``final_fraction`` at the end."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def optimizer_config(parameters, learning_rate: float, weight_decay: float, total_steps: int,
                     warmup_steps: int, final_fraction: float) -> dict:
    """What ``configure_optimizers`` returns: AdamW stepped by :func:`warmup_cosine` per step."""
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    scheduler = warmup_cosine(optimizer, total_steps, warmup_steps, final_fraction)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
