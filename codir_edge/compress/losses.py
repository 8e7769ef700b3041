"""Distillation losses. The contrastive loss owns its projection heads and reads the bank it is given.

Equations refer to ``../shared/docs/codir.md``:
  L = (1 - beta) CE(y, s) + beta T^2 KL(softmax(t/T) || softmax(s/T)) + lambda L_con      (step 5)
with CE and KL replaced by MSE for regression tasks.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from codir_edge.compress.bank.table import TeacherBank
from codir_edge.models.predict import host_to


def task_loss(logits: torch.Tensor, targets: torch.Tensor, regression: bool) -> torch.Tensor:
    """CE(y, s), or MSE for regression. logits: (B, C) float32; targets: (B,)."""
    if regression:
        return F.mse_loss(logits.squeeze(-1), targets.float())
    return F.cross_entropy(logits, targets.long())


def kd_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float,
    regression: bool,
    divisor: torch.Tensor | None = None,
) -> torch.Tensor:
    """T^2 KL(softmax(t/T) || softmax(s/T)) averaged over the rows (Hinton et al.; the T^2 keeps the
    gradient scale independent of T), or MSE between the outputs for regression. student, teacher:
    (B, C). ``divisor`` replaces the row count: the masked-LM term passes its masked-token count
    clamped to 1, so that a batch with nothing masked adds zero rather than NaN."""
    if regression:
        return F.mse_loss(student.squeeze(-1), teacher.squeeze(-1))
    log_s = F.log_softmax(student / temperature, dim=-1)
    log_t = F.log_softmax(teacher / temperature, dim=-1)
    if divisor is None:
        return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean") * temperature**2
    return F.kl_div(log_s, log_t, log_target=True, reduction="sum") / divisor * temperature**2


def prediction_rows(
    logits: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor, labeled: torch.Tensor, config, regression: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The prediction term of a batch whose rows may lack a label: (1 - beta) CE + beta KD on a
    labelled row, KD alone on the others (the teacher's distribution is the only target they have),
    averaged over the batch. Returns (term, CE mean over labelled rows, KD mean); a batch without a
    labelled row logs CE as 0. logits, teacher: (B, C); targets: (B,); labeled: (B,) bool."""
    temperature = config.kd_temperature
    if regression:
        ce = (logits.squeeze(-1) - targets.float()) ** 2  # (B,)
        kd = (logits.squeeze(-1) - teacher.squeeze(-1)) ** 2
    else:
        ce = F.cross_entropy(logits, targets.long().clamp_min(0), reduction="none")  # (B,)
        log_s = F.log_softmax(logits / temperature, dim=-1)
        log_t = F.log_softmax(teacher / temperature, dim=-1)
        kd = F.kl_div(log_s, log_t, log_target=True, reduction="none").sum(-1) * temperature**2
    ce = torch.where(labeled, ce, torch.zeros_like(ce))  # an unlabelled row's target never reaches the loss
    beta = config.kd_weight
    term = torch.where(labeled, (1 - beta) * ce + beta * kd, kd).mean()
    return term, ce.sum() / labeled.sum().clamp_min(1), kd.mean()


class CodirLoss(nn.Module):
    """L_con of codir.md step 4 with the heads g_S, g_T of step 3.

    The student summary h_S (B, L_S * d_S) and the bank's raw teacher summaries h_T of the anchor and
    its K negatives (B, 1 + K, L_S * d_T) are projected to p dims and L2-normalised; scores are cosine
    similarities over tau. ``infonce``: -log softmax of the positive among the 1 + K scores.
    ``nce``: CRD's binary NCE against uniform noise,
        -log sigma(s_0 / tau - log Z - log K) - sum_k log(1 - sigma(s_k / tau - log Z - log K)),
    where Z is the mean of e^(s / tau) over the first batch (CRD estimates it once the same way).

    A negative that is the anchor's own row is left out (its score is -inf, and K counts only the
    others): CoDIR-Pre passes the whole batch as in-batch negatives, anchor included, while the
    label-aware negatives of CoDIR-Fine never hold the anchor, so nothing is left out there.

    ``groups`` > 1 (``--layer-contrast each``) splits both summaries into that many equal slices (one per
    mapped layer), gives each slice its own pair of heads and contrasts it alone; the loss and top-1 are
    averaged over the slices. A joint contrast can be won by whichever layer separates the examples most
    easily; per layer, every student layer has to pick out its own teacher layer.
    """

    def __init__(
        self,
        bank: TeacherBank,
        student_dim: int,
        teacher_dim: int,
        projection_dim: int,
        temperature: float,
        form: str,
        groups: int = 1,
    ):
        super().__init__()
        self.groups = groups
        self.student_head = _head(groups, student_dim, projection_dim)  # g_S
        self.teacher_head = _head(groups, teacher_dim, projection_dim)  # g_T
        self.temperature = temperature
        self.form = form
        # log Z of binary NCE: NaN until the first batch sets it; saved with the heads for exact resume.
        self.register_buffer("log_z", torch.tensor(float("nan")))
        self._z_ready: bool | None = None
        # A reference kept out of the module tree: the bank is cached on its own, and DDP would
        # otherwise broadcast it and state_dict copy it into every checkpoint.
        self._bank = (bank,)

    @classmethod
    def for_student(cls, bank: TeacherBank, config, layers: int, student_width: int, teacher_width: int) -> CodirLoss:
        """The heads for ``layers`` matched layers of the given widths, with the run's settings."""
        return cls(
            bank,
            student_dim=layers * student_width,
            teacher_dim=layers * teacher_width,
            projection_dim=config.projection_dim,
            temperature=config.contrastive_temperature,
            form=config.contrastive,
            groups=layers if config.layer_contrast == "each" else 1,
        )

    @property
    def bank(self) -> TeacherBank:
        return self._bank[0]

    def forward(self, student_summary: torch.Tensor, index: torch.Tensor,
                negatives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """(L_con, top-1): the loss, and how often the positive outscores every negative (detached; a
        term near 1.0 has stopped teaching). student_summary: (B, L_S * d_S); index: (B,) bank rows of
        the anchors; negatives: (B, K) bank rows."""
        device = student_summary.device
        rows = torch.cat([host_to(index, negatives.device).unsqueeze(1), negatives], dim=1)  # (B, 1 + K)
        teacher = self.bank.rows(self.bank.features, rows, device)  # (B, 1 + K, L_S * d_T)
        z_s = F.normalize(self.student_head(student_summary), dim=-1)  # (B, p), or (B, G, p) per layer
        z_t = F.normalize(self.teacher_head(teacher), dim=-1)  # (B, 1 + K, p), or (B, 1 + K, G, p)
        if self.groups == 1:
            scores = torch.einsum("bp,bkp->bk", z_s, z_t).unsqueeze(1)  # (B, 1, 1 + K)
        else:
            scores = torch.einsum("bgp,bkgp->bgk", z_s, z_t)  # (B, G, 1 + K)
        scores = scores.float() / self.temperature
        itself = torch.zeros_like(rows, dtype=torch.bool)  # (B, 1 + K): True where a negative is the anchor
        itself[:, 1:] = rows[:, 1:] == rows[:, :1]
        scores = scores.masked_fill(host_to(itself, device).unsqueeze(1), float("-inf"))
        scores = scores.reshape(-1, scores.shape[-1])  # (B * G, 1 + K): each layer's contrast is a row
        top1 = (scores[:, 0] > scores[:, 1:].max(dim=1).values).float().mean().detach()
        if self.form == "infonce":
            return F.cross_entropy(scores, torch.zeros(scores.shape[0], dtype=torch.long, device=device)), top1
        return self._binary_nce(scores), top1

    def _binary_nce(self, scores: torch.Tensor) -> torch.Tensor:
        if self._z_ready is None:  # one host read, on the first step only
            self._z_ready = bool(torch.isfinite(self.log_z))
        if not self._z_ready:
            with torch.no_grad():
                finite = scores.detach()
                self.log_z.copy_(_global_log_mean_exp(finite[torch.isfinite(finite)]))
            self._z_ready = True
        k = torch.isfinite(scores[:, 1:]).sum(dim=1, keepdim=True).clamp_min(1)  # (B, 1) negatives kept
        shifted = scores - self.log_z - torch.log(k.float())  # logit of P(data | pair)
        positive = F.logsigmoid(shifted[:, 0])  # (B,)
        negative = F.logsigmoid(-shifted[:, 1:]).sum(dim=1)  # (B,)
        return -(positive + negative).mean()


def _head(groups: int, in_dim: int, out_dim: int) -> nn.Module:
    """A projection head: one linear map, or one per slice of the input (``GroupedLinear``)."""
    return nn.Linear(in_dim, out_dim) if groups == 1 else GroupedLinear(groups, in_dim // groups, out_dim)


class GroupedLinear(nn.Module):
    """``groups`` independent linear maps, the g-th applied to the g-th slice of the last dimension:
    (..., G * d_in) -> (..., G, d_out). One einsum instead of G small matmuls; each map starts as
    ``nn.Linear`` would (uniform within 1 / sqrt(d_in)), so a slice's head is scaled like the joint one."""

    def __init__(self, groups: int, in_dim: int, out_dim: int):
        super().__init__()
        self.groups, self.in_dim = groups, in_dim
        bound = 1 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(groups, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sliced = x.reshape(*x.shape[:-1], self.groups, self.in_dim)  # (..., G, d_in)
        return torch.einsum("...gi,gio->...go", sliced, self.weight) + self.bias


def _global_log_mean_exp(scores: torch.Tensor) -> torch.Tensor:
    """log mean e^scores over every rank's batch, so all ranks (and a single process with the same
    global batch) fix the same Z."""
    lse = torch.logsumexp(scores.flatten(), dim=0)
    count = torch.tensor(float(scores.numel()), device=scores.device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        import torch.distributed as dist

        peak = lse.clone()
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
        total = torch.exp(lse - peak)
        dist.all_reduce(total)
        dist.all_reduce(count)
        return peak + torch.log(total) - torch.log(count)
    return lse - torch.log(count)


class PkdLoss(nn.Module):
    """BERT-PKD's patient loss: sum over mapped layers of ||h_S / |h_S| - h_T / |h_T| ||^2 on [CLS]
    states, averaged over the batch. A linear map (trained) brings a narrower student to the
    teacher's width, as TinyBERT does; with equal widths there is none, as in PKD."""

    def __init__(self, layers: int, student_width: int, teacher_width: int):
        super().__init__()
        self.layers = layers
        self.teacher_width = teacher_width
        self.project = nn.Linear(student_width, teacher_width) if student_width != teacher_width else nn.Identity()

    def forward(self, student_cls: torch.Tensor, teacher_cls: torch.Tensor) -> torch.Tensor:
        """student_cls: (B, L * d_S); teacher_cls: (B, L * d_T)."""
        batch = student_cls.shape[0]
        s = self.project(student_cls.view(batch, self.layers, -1))  # (B, L, d_T)
        t = teacher_cls.view(batch, self.layers, self.teacher_width)  # (B, L, d_T)
        diff = F.normalize(s.float(), dim=-1) - F.normalize(t.float(), dim=-1)
        return diff.pow(2).sum(dim=(1, 2)).mean()
