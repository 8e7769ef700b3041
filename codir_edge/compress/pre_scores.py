"""How CoDIR-Pre scores its general student on the held-out slice after each epoch."""

from __future__ import annotations

import numpy as np

from codir_edge.compress.bank.build import compute_summaries
from codir_edge.compress.masking import IGNORE, mask_tokens
from codir_edge.data.encode import Encoded, eval_batches, pad_batch


def held_out_scores(distiller, held_enc: Encoded, held_rows, masking, runtime, config, dist) -> dict[str, float]:
    """Held-out scores, both on sentences the student never trained on.

    cka: linear CKA (Kornblith et al. 2019) between the student's and the teacher's layer summaries,
    no heads involved: 1 when the student's representation is a rotation and scaling of the teacher's.
    retrieval_top1: the share of held-out sentences whose student summary, through the trained heads,
    is closest to the teacher's summary of the same sentence among all held-out ones (chance is
    1 / held-out). It is what L_con trains, measured where it was not trained; against random
    negatives it saturates quickly, which is why CKA is the headline.
    mlm_accuracy: the share of masked held-out tokens the student restores (teachers with an MLM head).
    """
    import torch
    from torch.nn import functional as F

    student = distiller.student
    summaries, _ = compute_summaries(
        student, held_enc, distiller.layers, config.pooling, runtime, config.eval_batch_size, dist, with_logits=False
    )
    heads = distiller.contrastive
    bank = heads.bank
    with torch.inference_mode():
        device = heads.student_head.weight.device
        z_s = F.normalize(heads.student_head(summaries.to(device).float()), dim=-1)  # (H, p)
        teacher = bank.rows(bank.features, torch.as_tensor(held_rows, device=bank.device), device)  # (H, D)
        z_t = F.normalize(heads.teacher_head(teacher), dim=-1)  # (H, p)
        hits = (z_s @ z_t.T).argmax(dim=1) == torch.arange(len(held_rows), device=device)
        cka = linear_cka(summaries.to(device).float(), teacher)
        metrics = {"cka": cka, "retrieval_top1": float(hits.float().mean())}
    if distiller.mlm:
        metrics["mlm_accuracy"] = mlm_accuracy(student, held_enc, masking, runtime, config)
    return metrics


def linear_cka(x, y) -> float:
    """Linear CKA of two (n, d_x), (n, d_y) representations of the same n inputs: ||Y^T X||_F^2 over
    ||X^T X||_F ||Y^T Y||_F on centred columns; invariant to rotation and scale, in [0, 1]."""
    import torch

    x = (x - x.mean(dim=0)).double()
    y = (y - y.mean(dim=0)).double()
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    return float(cross / (torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)).clamp_min(1e-30))


def mlm_accuracy(model, held_enc: Encoded, masking, runtime, config) -> float:
    """Masked-token accuracy on the held-out slice, with the same masks every epoch (and for the
    teacher), drawn from a generator of their own."""
    import torch

    from codir_edge.compress.objectives import mlm_head
    from codir_edge.models.predict import to_device

    rng = np.random.default_rng([config.seed, 0])
    right = total = 0
    model.eval()
    with torch.inference_mode(), runtime.autocast():
        for indices in eval_batches(held_enc.lengths, config.eval_batch_size):
            batch = pad_batch(held_enc, indices)
            batch["input_ids"], labels = mask_tokens(batch["input_ids"], batch["attention_mask"], *masking, rng)
            chosen = labels != IGNORE
            hidden = model.base_model(**to_device(batch, runtime)).last_hidden_state
            chosen_t = torch.from_numpy(chosen).to(hidden.device)
            guess = mlm_head(model)(hidden[chosen_t]).argmax(dim=-1).cpu().numpy()
            right += int((guess == labels[chosen]).sum())
            total += int(chosen.sum())
    return right / max(total, 1)
