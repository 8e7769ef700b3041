"""``--task ner``'s objectives: the student's per-token outputs matched to the teacher's, which runs
beside it on the same batch (frozen, in inference mode, outside the module tree).

Every term reads the labelled positions only (each word's first piece), as the metric does, unless
``--pkd-tokens all`` asks mse for every piece:
- ``none``: cross-entropy on the gold tags (plain fine-tuning of the same student);
- ``kd``: (1 - beta) CE + beta T^2 KL(teacher || student) per token (KD alone on the transfer set's
  untagged words, whose contrastive label is the teacher's argmax);
- ``mse``: kd plus BERT-PKD's normalised MSE between the student's hidden states and the mapped
  teacher layers', per token (``--pkd-tokens all``: at every piece the attention mask keeps);
- ``codir``: kd plus lambda L_con per token: the student's states at its layers (concatenated) and
  the teacher's at the mapped layers are projected and normalised; each token must pick out the
  teacher's view of itself among the batch's tokens whose gold tag differs (InfoNCE at tau). The
  heads come from their own generator, so codir at contrastive weight 0 is kd, bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from codir_edge.compress.config import TokenConfig
from codir_edge.compress.losses import PkdLoss, kd_loss
from codir_edge.compress.objectives import gradient_share
from codir_edge.data.ner_encode import IGNORE
from codir_edge.models.families import width

MAX_ANCHORS = 512  # tokens contrasted per step: the score matrix is anchors x anchors


class TokenContrast(nn.Module):
    """L_con over tokens: (loss, top-1). student: (M, L * d_S); teacher: (M, L * d_T); labels: (M,)."""

    def __init__(self, student_dim: int, teacher_dim: int, projection_dim: int, temperature: float,
                 label_aware: bool = True):  # fmt: skip
        super().__init__()
        self.student_head = nn.Linear(student_dim, projection_dim)
        self.teacher_head = nn.Linear(teacher_dim, projection_dim)
        self.temperature = temperature
        self.label_aware = label_aware  # False: every other token is a negative, same tag included

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor):
        if len(labels) > MAX_ANCHORS:  # evenly spaced, drawing nothing: the global generator stays paired
            keep = torch.linspace(0, len(labels) - 1, MAX_ANCHORS, device=labels.device).long()
            student, teacher, labels = student[keep], teacher[keep], labels[keep]
        z_s = F.normalize(self.student_head(student.float()), dim=-1)
        z_t = F.normalize(self.teacher_head(teacher.float()), dim=-1)
        scores = z_s @ z_t.T / self.temperature  # (M, M): the diagonal holds each token's positive
        if self.label_aware:  # negatives: tokens of another tag only
            same = labels.unsqueeze(0) == labels.unsqueeze(1)
            own = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
            scores = scores.masked_fill(same & ~own, float("-inf"))
        target = torch.arange(len(labels), device=labels.device)
        loss = F.cross_entropy(scores, target)
        top1 = (scores.argmax(dim=1) == target).float().mean()
        return loss, top1.detach()


class TokenDistiller(nn.Module):
    """Student plus whatever heads its objective trains; ``forward`` is the engine's
    (inputs, index, targets, negatives, scale) with targets the (B, T) tag ids, IGNORE where unlabelled."""

    def __init__(self, student: nn.Module, teacher: nn.Module, config: TokenConfig, mapping: list[int],
                 student_ids: torch.Tensor | None = None):  # fmt: skip
        super().__init__()
        self.student = student
        # --vocab auto: the student's id of each of the teacher's (the batches hold the teacher's ids)
        self._student_ids = (student_ids,)
        self.config = config
        self.mapping = mapping  # teacher layer (1-based) of each student layer
        self._teacher = (teacher,)  # frozen, and kept out of the module tree (DDP, state_dict, optimizer)
        self.contrastive = None
        self.pkd = None
        self.last_of_window = False  # set by the engine: the contrastive gradient share is measured then
        layers, s_width, t_width = len(mapping), width(student.config), width(teacher.config)
        with torch.random.fork_rng(devices=[]):  # the global generator (dropout) stays as kd's
            torch.manual_seed(config.seed + 1)
            if config.objective == "codir":
                label_aware = config.token_negatives == "label"
                self.contrastive = TokenContrast(layers * s_width, layers * t_width, config.projection_dim,
                                                 config.contrastive_temperature, label_aware)  # fmt: skip
            elif config.objective == "mse":
                self.pkd = PkdLoss(layers, s_width, t_width)
        pooler = getattr(student.base_model, "pooler", None)
        if pooler is not None:  # no token output reads it: frozen, so that DDP finds no unused parameter
            pooler.requires_grad_(False)

    def _student_inputs(self, inputs: dict) -> dict:
        ids = self._student_ids[0]
        if ids is None:
            return inputs
        if ids.device != inputs["input_ids"].device:
            ids = self._student_ids = (ids.to(inputs["input_ids"].device),)
            ids = ids[0]
        return {**inputs, "input_ids": ids[inputs["input_ids"]]}

    def _states(self, out, teacher_out, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's layers and the teacher's mapped ones at ``positions`` (B, T), each concatenated:
        (M, L * d_S) and (M, L * d_T)."""
        student = torch.cat([out.hidden_states[i][positions] for i in range(1, len(self.mapping) + 1)], -1)
        teacher = torch.cat([teacher_out.hidden_states[t][positions] for t in self.mapping], -1)
        return student, teacher

    def forward(self, inputs, index, targets, negatives=None, scale: float = 1.0):  # noqa: ARG002 - engine interface
        cfg = self.config
        hidden = self.contrastive is not None or self.pkd is not None
        out = self.student(**self._student_inputs(inputs), output_hidden_states=hidden)
        chosen = targets != IGNORE  # (B, T): first pieces, tagged (>= 0) or from the transfer set (UNLABELED)
        logits = out.logits.float()[chosen]  # (M, C)
        gold = targets[chosen]
        tagged = gold >= 0
        ce = F.cross_entropy(logits[tagged], gold[tagged]) if bool(tagged.any()) else logits.sum() * 0.0
        terms = {"ce": ce}
        if cfg.objective == "none":
            return ce * scale, {"ce": ce.detach()}
        with torch.no_grad():
            teacher_out = self._teacher[0](**inputs, output_hidden_states=hidden)
        teacher_logits = teacher_out.logits.float()[chosen]
        gold = torch.where(tagged, gold, teacher_logits.argmax(dim=-1))  # untagged words: the teacher's tag
        terms["kd"] = kd_loss(logits, teacher_logits, cfg.kd_temperature, False,
                              divisor=chosen.sum().clamp_min(1))  # fmt: skip
        total = (1 - cfg.kd_weight) * ce + cfg.kd_weight * terms["kd"]
        if self.pkd is not None:  # --pkd-tokens all: every real piece, the context the first pieces come from
            where = inputs["attention_mask"].bool() if cfg.pkd_tokens == "all" else chosen
            terms["pkd"] = self.pkd(*self._states(out, teacher_out, where))
            total = total + cfg.mse_weight * terms["pkd"]
        if self.contrastive is not None:
            states = self._states(out, teacher_out, chosen)
            terms["contrastive"], terms["contrastive_top1"] = self.contrastive(*states, gold)
            weighted = cfg.contrastive_weight * terms["contrastive"]
            if torch.is_grad_enabled() and self.last_of_window:  # once per log window: two extra backwards
                terms["contrastive_grad_share"] = gradient_share(weighted, total, self.student)
            total = total + weighted
        return total * scale, {name: value.detach() for name, value in terms.items()}
