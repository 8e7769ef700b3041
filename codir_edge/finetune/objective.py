"""Finetune's objective in the shape the training engine drives."""

from __future__ import annotations

from torch import nn


class LabelLoss(nn.Module):
    """The classifier and its own loss (cross-entropy, or MSE for regression, as transformers
    computes it): the engine's ``forward(inputs, index, targets, negatives, scale)``, with one term
    named ``loss`` in the log."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs, index, targets, negatives=None, scale: float = 1.0):  # noqa: ARG002 - engine interface
        loss = self.model(**inputs, labels=targets).loss
        return loss * scale, {"loss": loss.detach()}
