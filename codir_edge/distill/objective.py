"""One module for every objective, so ``codir``, ``kd``, ``mse`` and ``none`` share the same student,
data order, optimizer and step, and differ only in the loss terms they add."""

from __future__ import annotations

import torch
from torch import nn

from codir_edge.distill.config import CompressConfig
from codir_edge.distill.features import layer_summaries
from codir_edge.distill.losses import CodirLoss, PkdLoss, kd_loss, task_loss
from codir_edge.distill.memory import TeacherBank
from codir_edge.models.predict import host_to


class Distiller(nn.Module):
    """Student plus whatever heads its objective trains; ``forward`` returns the weighted total and each
    term (detached) for logging. DDP wraps this module, so every trained parameter lives under it."""

    def __init__(
        self,
        student: nn.Module,
        bank: TeacherBank | None,
        config: CompressConfig,
        regression: bool,
        student_width: int,
        teacher_width: int,
    ):
        super().__init__()
        self.student = student
        self.config = config
        self.regression = regression
        self.layers = list(range(1, _depth(student) + 1))  # every student block, matched in order
        self._bank = (bank,)  # kept out of the module tree, as in CodirLoss
        self.contrastive = None
        self.pkd = None
        if config.objective == "codir":
            self.contrastive = CodirLoss.for_student(bank, config, len(self.layers), student_width, teacher_width)
        elif config.objective == "mse":
            self.pkd = PkdLoss(len(self.layers), student_width, teacher_width)

    @property
    def bank(self) -> TeacherBank | None:
        return self._bank[0]

    def forward(
        self,
        inputs: dict[str, torch.Tensor],
        index: torch.Tensor,
        targets: torch.Tensor,
        negatives: torch.Tensor | None = None,
        scale: float = 1.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """inputs: (B, T) tensors; index: (B,) bank rows; targets: (B,); negatives: (B, K) bank rows.

        ``scale`` weights this rank's share of an uneven global batch so that DDP's gradient average
        equals the mean over the global batch, as one process would compute it.
        """
        cfg = self.config
        hidden = cfg.objective in ("codir", "mse")
        out = self.student(**inputs, output_hidden_states=hidden)
        logits = out.logits.float()  # (B, C)
        terms = {"ce": task_loss(logits, targets, self.regression)}
        if cfg.objective == "none":
            total = terms["ce"]
        else:
            bank = self.bank
            teacher_logits = bank.rows(bank.logits, host_to(index, bank.logits.device), logits.device)  # (B, C)
            terms["kd"] = kd_loss(logits, teacher_logits, cfg.kd_temperature, self.regression)
            total = (1 - cfg.kd_weight) * terms["ce"] + cfg.kd_weight * terms["kd"]
        if self.contrastive is not None:
            summary = layer_summaries(out.hidden_states, inputs["attention_mask"], self.layers, cfg.pooling)
            terms["contrastive"] = self.contrastive(summary, index, negatives)
            total = total + cfg.contrastive_weight * terms["contrastive"]
        if self.pkd is not None:
            student_cls = layer_summaries(out.hidden_states, inputs["attention_mask"], self.layers, "cls")
            teacher_cls = self.bank.rows(self.bank.features, host_to(index, self.bank.features.device), logits.device)
            terms["pkd"] = self.pkd(student_cls, teacher_cls)
            total = total + cfg.mse_weight * terms["pkd"]
        return total * scale, {name: value.detach() for name, value in terms.items()}


def _depth(model: nn.Module) -> int:
    config = model.config
    return int(getattr(config, "num_hidden_layers", getattr(config, "n_layers", 0)))
