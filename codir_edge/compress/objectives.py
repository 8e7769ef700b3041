"""The objectives of both compress stages: a module that owns the student and whatever heads its
loss trains, and whose ``forward(inputs, index, targets, negatives, scale)`` returns the weighted
total and each term (detached) for logging. DDP wraps it, so every trained parameter lives under it.

CoDIR-Fine (:class:`Distiller`): ``codir``, ``kd``, ``mse`` and ``none`` share the same student, data
order, optimizer and step, and differ only in the loss terms they add (codir.md, step 5).

CoDIR-Pre (:class:`PreDistiller`): contrastive distillation of a backbone's intermediate layers on
unlabelled text, plus masked-LM terms when the teacher has an MLM head (codir.md, "CoDIR-Pre"):

    L = lambda L_con + (1 - beta) CE_mlm + beta T^2 KL(softmax(t_mlm / T) || softmax(s_mlm / T))

L_con is CoDIR-Fine's loss (same heads, same bank of raw teacher summaries); its negatives are the
rest of the global batch plus K random corpus rows. With masking, the student reads the masked
sentence and must still pick out the teacher's summary of the clean one among the negatives, in
the same forward pass that serves the MLM terms: one student pass per step. MLM logits are per
token (vocabulary-wide), so the teacher runs online on the same masked batch for their KD term;
both heads are applied to the masked positions only.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from codir_edge.compress.bank.table import TeacherBank
from codir_edge.compress.config import FineConfig, PreConfig
from codir_edge.compress.features import layer_summaries
from codir_edge.compress.losses import CodirLoss, PkdLoss, kd_loss, prediction_rows, task_loss
from codir_edge.compress.masking import IGNORE
from codir_edge.models.checkpoint import num_layers
from codir_edge.models.predict import host_to


class Distiller(nn.Module):
    """Student plus whatever heads its objective trains; ``forward`` returns the weighted total and each
    term (detached) for logging. DDP wraps this module, so every trained parameter lives under it."""

    def __init__(
        self,
        student: nn.Module,
        bank: TeacherBank | None,
        config: FineConfig,
        regression: bool,
        student_width: int,
        teacher_width: int,
        labeled_rows: int | None = None,
    ):
        super().__init__()
        self.student = student
        self.config = config
        self.regression = regression
        self.labeled_rows = labeled_rows  # bank rows from here on have no label (transfer set): no CE
        self.layers = list(range(1, num_layers(student.config) + 1))  # every student block, matched in order
        self._bank = (bank,)  # kept out of the module tree, as in CodirLoss
        self.contrastive = None
        self.pkd = None
        self.last_of_window = False  # set by the engine: the contrastive gradient share is measured then
        # The heads come from their own draw: the global generator (dropout masks, and everything
        # after) is left where it was, so that every objective with one seed trains on the same random
        # draws and codir at contrastive weight 0 is kd, bit for bit.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed + 1)
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
        if cfg.objective == "none":
            terms = {"ce": task_loss(logits, targets, self.regression)}
            total = terms["ce"]
        else:
            bank = self.bank
            teacher_logits = bank.rows(bank.logits, host_to(index, bank.logits.device), logits.device)  # (B, C)
            if self.labeled_rows is None:
                terms = {"ce": task_loss(logits, targets, self.regression)}
                terms["kd"] = kd_loss(logits, teacher_logits, cfg.kd_temperature, self.regression)
                total = (1 - cfg.kd_weight) * terms["ce"] + cfg.kd_weight * terms["kd"]
            else:
                labeled = host_to(index, logits.device) < self.labeled_rows  # (B,)
                total, ce, kd = prediction_rows(logits, teacher_logits, targets, labeled, cfg, self.regression)
                terms = {"ce": ce, "kd": kd}
        if self.contrastive is not None:
            total = add_contrastive(self, out.hidden_states, inputs["attention_mask"], index, negatives, total, terms,
                                    cfg.pooling)  # fmt: skip
        if self.pkd is not None:
            student_cls = layer_summaries(out.hidden_states, inputs["attention_mask"], self.layers, "cls")
            teacher_cls = self.bank.rows(self.bank.features, host_to(index, self.bank.features.device), logits.device)
            terms["pkd"] = self.pkd(student_cls, teacher_cls)
            total = total + cfg.mse_weight * terms["pkd"]
        return total * scale, {name: value.detach() for name, value in terms.items()}


def add_contrastive(objective: nn.Module, hidden_states, attention_mask, index, negatives, total: torch.Tensor,
                    terms: dict[str, torch.Tensor], pooling: str) -> torch.Tensor:  # fmt: skip
    """``total`` plus lambda L_con of ``objective`` (its ``contrastive`` heads over its ``layers``, summarised
    with ``pooling``, the bank's); L_con, its top-1 and, once per log window, its gradient share go into ``terms``."""
    cfg = objective.config
    summary = layer_summaries(hidden_states, attention_mask, objective.layers, pooling)
    terms["contrastive"], terms["contrastive_top1"] = objective.contrastive(summary, index, negatives)
    weighted = cfg.contrastive_weight * terms["contrastive"]
    if torch.is_grad_enabled() and objective.last_of_window:  # once per log window: two extra backwards
        terms["contrastive_grad_share"] = gradient_share(weighted, total, objective.student)
    return total + weighted


def gradient_share(term: torch.Tensor, rest: torch.Tensor, student: nn.Module) -> torch.Tensor:
    """|grad of ``term``| / |grad of ``rest``| over the student's parameters: how much of the step the
    contrastive term drives (a solved term shows a share near 0). Computed with autograd.grad, which
    fills no .grad and fires no DDP hook; this rank's batch only."""
    params = [p for p in student.parameters() if p.requires_grad]
    norms = []
    for loss in (term, rest):
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        norms.append(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))
    return (norms[0] / norms[1].clamp_min(1e-12)).detach()


# Where BERT-family masked LMs keep their head: BERT, ERNIE, Megatron-BERT ("cls"), RoBERTa,
# XLM-R, CamemBERT, MPNet ("lm_head"), ALBERT ("predictions").
_MLM_HEADS = ("cls", "lm_head", "predictions")


def mlm_head(model: nn.Module) -> nn.Module | None:
    """The module mapping final token states to vocabulary logits, or None for a bare backbone."""
    for name in _MLM_HEADS:
        head = getattr(model, name, None)
        if isinstance(head, nn.Module):
            return head
    return None


class PreDistiller(nn.Module):
    """Student plus the contrastive heads; ``forward`` matches the engine's (inputs, index, targets,
    negatives, scale), where targets are the MLM labels (B, T) or None without masking."""

    def __init__(
        self,
        student: nn.Module,
        bank: TeacherBank,
        teacher: nn.Module | None,
        config: PreConfig,
        student_width: int,
        teacher_width: int,
    ):
        super().__init__()
        self.student = student
        self.config = config
        self.layers = list(range(1, num_layers(student.config) + 1))
        self.contrastive = CodirLoss.for_student(bank, config, len(self.layers), student_width, teacher_width)
        # Frozen, and kept out of the module tree (DDP, state_dict and the optimizer never see it).
        self._teacher = (teacher,)
        self.mlm = teacher is not None
        pooler = getattr(student.base_model, "pooler", None)
        if pooler is not None:  # no term reads it: frozen as copied, so that DDP finds no unused parameter
            pooler.requires_grad_(False)

    def forward(
        self,
        inputs: dict[str, torch.Tensor],
        index: torch.Tensor,
        targets: torch.Tensor | None,
        negatives: torch.Tensor,
        scale: float = 1.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """inputs: (B, T); index: (B,) bank rows; targets: (B, T) MLM labels or None; negatives: (B, M)."""
        cfg = self.config
        out = self.student.base_model(**inputs, output_hidden_states=True)
        summary = layer_summaries(out.hidden_states, inputs["attention_mask"], self.layers, cfg.pooling)
        contrastive, top1 = self.contrastive(summary, index, negatives)
        terms = {"contrastive": contrastive, "contrastive_top1": top1}
        total = cfg.contrastive_weight * terms["contrastive"]
        if self.mlm:
            chosen = targets != IGNORE  # (B, T)
            count = chosen.sum().clamp_min(1)  # a batch with nothing masked adds zero, not NaN
            student_logits = mlm_head(self.student)(out.last_hidden_state[chosen]).float()  # (M, V)
            teacher = self._teacher[0]
            with torch.no_grad():
                hidden = teacher.base_model(**inputs).last_hidden_state[chosen]
                teacher_logits = mlm_head(teacher)(hidden).float()  # (M, V)
            terms["mlm"] = F.cross_entropy(student_logits, targets[chosen], reduction="sum") / count
            terms["mlm_kd"] = kd_loss(student_logits, teacher_logits, cfg.kd_temperature, False, divisor=count)
            total = total + (1 - cfg.kd_weight) * terms["mlm"] + cfg.kd_weight * terms["mlm_kd"]
        return total * scale, {name: value.detach() for name, value in terms.items()}


class EmbedDistiller(nn.Module):
    """``--task embedding``: the student's sentence embedding matched to the teacher's, whose pooled
    embeddings the bank holds in its logits' place (B, d), before any normalisation.

    ``cosine``: mean 1 - cos(s, t), the direction only (what a normalised model outputs, and what its
    users' cosine scores read). ``mse``: mean squared error of the pooled embeddings, magnitude
    included (sentence-transformers' distillation recipe, on the embeddings before Normalize, since after
    it MSE is only 2 - 2 cos again). ``codir``: cosine plus lambda L_con on the intermediate layers,
    negatives the rest of the global batch and K random corpus rows, as CoDIR-Pre draws them; the heads
    come from their own generator, so codir at contrastive weight 0 is cosine bit for bit.
    """

    def __init__(self, student: nn.Module, bank: TeacherBank, config, pooling: str, student_width: int,
                 teacher_width: int):  # fmt: skip
        super().__init__()
        self.student = student
        self.config = config
        self.pooling = pooling
        self.layers = list(range(1, num_layers(student.config) + 1))
        self._bank = (bank,)
        self.contrastive = None
        self.last_of_window = False  # set by the engine: the contrastive gradient share is measured then
        if config.objective == "codir":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed + 1)
                self.contrastive = CodirLoss.for_student(bank, config, len(self.layers), student_width, teacher_width)
        pooler = getattr(student, "pooler", None)
        if pooler is not None:  # no embedding reads it: frozen as copied, so that DDP finds no unused parameter
            pooler.requires_grad_(False)

    def forward(
        self,
        inputs: dict[str, torch.Tensor],
        index: torch.Tensor,
        targets: torch.Tensor | None,
        negatives: torch.Tensor,
        scale: float = 1.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """inputs: (B, T); index: (B,) bank rows; targets: unused (None); negatives: (B, M) bank rows."""
        from codir_edge.models.sentence import pool

        cfg = self.config
        bank = self._bank[0]
        out = self.student(**inputs, output_hidden_states=self.contrastive is not None)
        embedding = pool(out.last_hidden_state, inputs["attention_mask"], self.pooling)  # (B, d)
        teacher = bank.rows(bank.logits, host_to(index, bank.logits.device), embedding.device).float()  # (B, d)
        if cfg.objective == "mse":
            terms = {"mse": F.mse_loss(embedding, teacher)}
            total = terms["mse"]
        else:
            terms = {"cosine": (1 - F.cosine_similarity(embedding, teacher, dim=-1)).mean()}
            total = terms["cosine"]
        if self.contrastive is not None:
            total = add_contrastive(self, out.hidden_states, inputs["attention_mask"], index, negatives, total, terms,
                                    self.pooling)  # fmt: skip
        return total * scale, {name: value.detach() for name, value in terms.items()}
