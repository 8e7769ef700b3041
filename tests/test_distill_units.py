"""CoDIR's pieces through their public functions: layer mapping, skip initialisation, negative
sampling and the losses, checked against the equations in ../shared/docs/codir.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codir_edge.compress.bank.negatives import NegativeSampler
from codir_edge.compress.bank.table import TeacherBank
from codir_edge.compress.losses import CodirLoss, PkdLoss, kd_loss
from codir_edge.compress.student import layer_map, skip_student


def test_layer_map_matches_the_uniform_skip_mapping():
    assert layer_map(6, 3) == [2, 4, 6]
    assert layer_map(12, 6) == [2, 4, 6, 8, 10, 12]
    assert layer_map(6, 4) == [2, 3, 5, 6]  # 1.5 -> 2 and 4.5 -> 5: halves round up
    assert layer_map(6, 1) == [6]


@given(st.integers(2, 48).flatmap(lambda t: st.tuples(st.just(t), st.integers(1, t - 1))))
def test_layer_map_is_increasing_and_ends_at_the_top(sizes):
    teacher, student = sizes
    mapping = layer_map(teacher, student)
    assert len(mapping) == student and mapping[-1] == teacher
    assert all(1 <= a < b <= teacher for a, b in zip(mapping, mapping[1:], strict=False))


def test_skip_student_copies_the_mapped_layers_embeddings_and_head(tmp_path, backbone_dir):
    from conftest import build_tiny_bert
    from transformers import AutoModelForSequenceClassification

    folder = build_tiny_bert(tmp_path / "t", backbone_dir, num_labels=3, layers=6)
    teacher = AutoModelForSequenceClassification.from_pretrained(folder)
    student = skip_student(teacher, 3)
    assert student.config.num_hidden_layers == 3 and student.config.num_labels == 3
    t, s = teacher.state_dict(), student.state_dict()
    for i, source in enumerate([2, 4, 6]):
        for suffix in ("attention.self.query.weight", "output.dense.bias"):
            assert torch.equal(s[f"bert.encoder.layer.{i}.{suffix}"], t[f"bert.encoder.layer.{source - 1}.{suffix}"])
    for name in ("bert.embeddings.word_embeddings.weight", "classifier.weight", "bert.pooler.dense.weight"):
        assert torch.equal(s[name], t[name])
    student.save_pretrained(tmp_path / "s")
    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "s").config.num_hidden_layers == 3


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.integers(0, 3), min_size=2, max_size=60),
    k=st.integers(1, 30),
    seed=st.integers(0, 2**31),
)
def test_negatives_have_another_label_and_repeat_only_when_the_pool_is_short(labels, k, seed):
    targets = torch.tensor(labels)
    sampler = NegativeSampler(targets, k, regression=False, margin=None, seed=seed)
    anchors = torch.tensor(labels[:16])
    negatives = sampler.sample(anchors)
    assert negatives.shape == (len(anchors), k)
    for anchor, row in zip(anchors.tolist(), negatives.tolist(), strict=True):
        pool = sum(1 for y in labels if y != anchor)
        if pool == 0:
            continue  # said in shortfalls; nothing to test against
        assert all(labels[j] != anchor for j in row)
        if pool >= k:
            assert len(set(row)) == k, "drawn with replacement although the pool was large enough"
    short = {y for y in set(labels) if 0 < sum(1 for z in labels if z != y) < k}
    assert bool(short) <= bool(sampler.shortfalls)


def test_sampler_is_reproducible_from_its_saved_state():
    targets = torch.tensor([0, 1] * 50)
    sampler = NegativeSampler(targets, 8, False, None, seed=3)
    state = sampler.state()
    first = sampler.sample(targets[:10])
    sampler.load_state(state)
    assert torch.equal(first, sampler.sample(targets[:10]))
    assert not torch.equal(first, sampler.sample(targets[:10]))


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(st.floats(0, 5, allow_nan=False), min_size=3, max_size=50),
    k=st.integers(1, 20),
    margin=st.floats(0, 2),
)
def test_regression_negatives_are_further_than_the_margin(values, k, margin):
    targets = torch.tensor(values)
    sampler = NegativeSampler(targets, k, regression=True, margin=margin, seed=0)
    negatives = sampler.sample(targets)
    for y, row in zip(values, negatives.tolist(), strict=True):
        far = [j for j, z in enumerate(values) if abs(z - y) > margin + 1e-6]
        if far:
            assert all(abs(values[j] - y) > margin - 1e-6 for j in row)
        if len(far) >= k:
            assert len(set(row)) == k


def _bank(n=20, dim=12, classes=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn((n, dim), generator=g).half()
    logits = torch.randn((n, classes), generator=g).half()
    return TeacherBank(feats, logits, torch.arange(n) % classes)


def test_infonce_matches_the_equation():
    bank = _bank()
    loss = CodirLoss(bank, student_dim=8, teacher_dim=12, projection_dim=4, temperature=0.1, form="infonce")
    h_s = torch.randn(3, 8)
    index, negatives = torch.tensor([0, 1, 2]), torch.tensor([[1, 3], [0, 2], [1, 5]])
    value, top1 = loss(h_s, index, negatives)
    expected, wins = 0.0, 0
    with torch.no_grad():
        z_s = torch.nn.functional.normalize(loss.student_head(h_s), dim=-1)
        for i in range(3):
            rows = [index[i].item(), *negatives[i].tolist()]
            z_t = torch.nn.functional.normalize(loss.teacher_head(bank.features[rows].float()), dim=-1)
            e = torch.exp(z_t @ z_s[i] / 0.1)
            expected += -math.log(e[0] / e.sum())
            wins += int(e[0] > e[1:].max())
    assert value.item() == pytest.approx(expected / 3, rel=1e-5)
    assert top1.item() == pytest.approx(wins / 3) and not top1.requires_grad  # the positive outscores all
    value.backward()
    assert loss.student_head.weight.grad.abs().sum() > 0 and loss.teacher_head.weight.grad.abs().sum() > 0
    assert set(loss.state_dict()) == {
        "student_head.weight",
        "student_head.bias",
        "teacher_head.weight",
        "teacher_head.bias",
        "log_z",
    }  # fmt: skip  (the bank is cached apart)


def test_each_layer_contrast_is_the_mean_of_one_infonce_per_layer_with_its_own_heads():
    """--layer-contrast each: slice g of both summaries through its own heads, one InfoNCE per slice, averaged;
    the same numbers as separate single-layer losses given those heads."""
    bank = _bank(dim=12)  # 3 layers of width 4 in the teacher, 3 layers of width 2 in the student
    loss = CodirLoss(bank, student_dim=6, teacher_dim=12, projection_dim=5, temperature=0.2, form="infonce", groups=3)
    h_s = torch.randn(4, 6)
    index, negatives = torch.tensor([0, 1, 2, 3]), torch.tensor([[1, 3], [0, 2], [1, 5], [7, 9]])
    value, top1 = loss(h_s, index, negatives)
    per_layer, wins = [], 0
    for g in range(3):
        single = CodirLoss(TeacherBank(bank.features[:, 4 * g : 4 * g + 4], bank.logits, bank.targets), 2, 4, 5,
                           temperature=0.2, form="infonce")  # fmt: skip
        with torch.no_grad():
            for mine, grouped in ((single.student_head, loss.student_head), (single.teacher_head, loss.teacher_head)):
                mine.weight.copy_(grouped.weight[g].T)
                mine.bias.copy_(grouped.bias[g])
        value_g, top1_g = single(h_s[:, 2 * g : 2 * g + 2], index, negatives)
        per_layer.append(value_g.item())
        wins += top1_g.item() * 4
    assert value.item() == pytest.approx(sum(per_layer) / 3, rel=1e-5)
    assert top1.item() == pytest.approx(wins / 12)
    value.backward()
    assert all((loss.student_head.weight.grad[g].abs().sum() > 0) for g in range(3))
    assert loss.student_head.weight.shape == (3, 2, 5) and loss.teacher_head.weight.shape == (3, 4, 5)


@pytest.mark.parametrize("form", ["infonce", "nce"])
def test_one_group_is_the_joint_contrast(form):
    """groups=1 keeps the paper's single head pair over the concatenation: the same loss as before."""
    bank = _bank()
    torch.manual_seed(3)
    joint = CodirLoss(bank, 8, 12, 4, temperature=0.3, form=form)
    torch.manual_seed(3)
    grouped = CodirLoss(bank, 8, 12, 4, temperature=0.3, form=form, groups=1)
    h_s, index, negatives = torch.randn(3, 8), torch.tensor([0, 1, 2]), torch.tensor([[1, 3], [0, 2], [1, 5]])
    assert torch.equal(joint(h_s, index, negatives)[0], grouped(h_s, index, negatives)[0])
    assert isinstance(grouped.student_head, torch.nn.Linear)


def test_binary_nce_fixes_z_on_the_first_batch_and_matches_crd():
    bank = _bank()
    loss = CodirLoss(bank, 8, 12, 4, temperature=0.5, form="nce")
    h_s = torch.randn(2, 8)
    index, negatives = torch.tensor([0, 1]), torch.tensor([[1, 3, 5], [0, 2, 4]])
    value = loss(h_s, index, negatives)[0].item()
    with torch.no_grad():
        z_s = torch.nn.functional.normalize(loss.student_head(h_s), dim=-1)
        rows = torch.cat([index[:, None], negatives], 1)
        z_t = torch.nn.functional.normalize(loss.teacher_head(bank.features[rows].float()), dim=-1)
        scores = torch.einsum("bp,bkp->bk", z_s, z_t) / 0.5
        z = torch.exp(scores).mean() * len(bank)  # CRD: Z = mean(e^s) * N on the first batch
        p_noise = 1 / len(bank)
        out = torch.exp(scores) / z
        p_data = out / (out + 3 * p_noise)
        expected = -(torch.log(p_data[:, 0]) + torch.log(1 - p_data[:, 1:]).sum(1)).mean()
    assert value == pytest.approx(expected.item(), rel=1e-4)
    assert torch.isfinite(loss.log_z)
    frozen = loss.log_z.clone()
    loss(torch.randn(2, 8), index, negatives)
    assert torch.equal(frozen, loss.log_z)


def test_kd_loss_is_zero_for_equal_logits_and_scales_with_t_squared():
    s = torch.tensor([[1.0, -1.0], [0.5, 0.2]])
    assert kd_loss(s, s, 2.0, False).item() == pytest.approx(0.0, abs=1e-7)
    t = torch.tensor([[-1.0, 1.0], [0.0, 0.0]])
    p_t = torch.softmax(t / 2, -1)
    manual = (p_t * (torch.log(p_t) - torch.log_softmax(s / 2, -1))).sum(-1).mean() * 4
    assert kd_loss(s, t, 2.0, False).item() == pytest.approx(manual.item(), rel=1e-6)
    assert kd_loss(s[:, :1], t[:, :1], 2.0, True).item() == pytest.approx((4 + 0.25) / 2)  # plain MSE


def test_pkd_loss_compares_normalised_states_and_projects_narrow_students():
    teacher = torch.randn(4, 3 * 6)
    same = PkdLoss(3, 6, 6)
    assert same(teacher * 5, teacher).item() == pytest.approx(0.0, abs=1e-5)  # scale does not matter
    narrow = PkdLoss(3, 4, 6)
    assert narrow(torch.randn(4, 3 * 4), teacher).item() > 0
    assert sum(p.numel() for p in narrow.parameters()) == 4 * 6 + 6


def test_bank_rows_come_back_as_float32_on_the_asked_device():
    bank = _bank(n=5)
    rows = bank.rows(bank.features, torch.tensor([[0, 4], [1, 1]]), torch.device("cpu"))
    assert rows.dtype == torch.float32 and rows.shape == (2, 2, 12)
    np.testing.assert_array_equal(rows[0, 1].numpy(), bank.features[4].float().numpy())


def test_hard_negatives_are_the_teachers_nearest_rows_of_another_label_without_near_duplicates():
    from codir_edge.compress.bank.hard import DUPLICATE_COSINE, hard_neighbours
    from codir_edge.compress.bank.negatives import NegativeSampler
    from codir_edge.compress.bank.table import TeacherBank

    g = torch.Generator().manual_seed(0)
    feats = torch.randn(60, 16, generator=g)
    feats[1] = feats[0] * 1.001  # a near-duplicate of row 0, with another label
    targets = torch.arange(60) % 3
    targets[1] = 1
    bank = TeacherBank(feats.half(), torch.zeros(60, 3).half(), targets)
    sampler = NegativeSampler(targets, 4, False, None, seed=0)
    lists, info = hard_neighbours(bank, sampler.is_negative, 8, seed=0)
    assert lists.shape == (60, 8) and info["method"] == "exact cosine"
    units = torch.nn.functional.normalize(feats.half().float(), dim=-1)
    for row in range(60):
        chosen = lists[row]
        assert (targets[chosen] != targets[row]).all()  # negatives only
        similarity = units @ units[row]
        allowed = (targets != targets[row]) & (similarity < DUPLICATE_COSINE)
        best = similarity.masked_fill(~allowed, -2).topk(8).indices
        assert set(chosen.tolist()) == set(best.tolist())  # the nearest ones, exactly
    assert 1 not in lists[0].tolist()  # the near-duplicate is not a lesson
    sampler.attach_hard(lists, info)
    anchors = torch.tensor([0, 3, 5, 7])
    drawn = sampler.sample(targets[anchors], anchors)
    assert drawn.shape == (4, 4)
    for i, row in enumerate(anchors.tolist()):
        assert set(drawn[i, :2].tolist()) <= set(lists[row].tolist()) and len(set(drawn[i, :2].tolist())) == 2
        assert (targets[drawn[i]] != targets[row]).all()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 40), k=st.integers(1, 30), seed=st.integers(0, 2**31))
def test_instance_negatives_are_any_row_but_the_anchors_own_same_label_included(n, k, seed):
    targets = torch.zeros(n, dtype=torch.long)  # one label: label-aware sampling would have no negatives
    sampler = NegativeSampler(targets, k, regression=False, margin=None, seed=seed, instance=True)
    assert not sampler.shortfalls and sampler.is_negative(targets[:3], targets).all()
    rows = torch.arange(n)
    drawn = sampler.sample(targets, rows)
    assert drawn.shape == (n, k) and (drawn >= 0).all() and (drawn < n).all()
    assert (drawn != rows.unsqueeze(1)).all()
    if n > 2 and k * n >= 200:  # every other row is reachable: enough draws see more than one of them
        assert len(set(drawn.flatten().tolist())) == n


def test_instance_negatives_need_the_anchor_rows_and_take_hard_lists_of_any_label():
    from codir_edge.compress.bank.hard import hard_neighbours

    g = torch.Generator().manual_seed(0)
    feats = torch.randn(30, 8, generator=g)
    targets = torch.arange(30) % 2
    bank = TeacherBank(feats.half(), torch.zeros(30, 2).half(), targets)
    sampler = NegativeSampler(targets, 4, False, None, seed=0, instance=True)
    with pytest.raises(ValueError, match="bank rows"):
        sampler.sample(targets[:2])
    lists, _ = hard_neighbours(bank, sampler.is_negative, 6, seed=0)
    units = torch.nn.functional.normalize(feats.half().float(), dim=-1)
    for row in range(30):  # the nearest rows whatever their label, never the row itself
        similarity = (units @ units[row]).masked_fill(torch.arange(30) == row, -2)
        assert set(lists[row].tolist()) == set(similarity.topk(6).indices.tolist())
    assert any((targets[lists[row]] == targets[row]).any() for row in range(30))


def test_hard_negatives_on_a_random_projection_keep_most_of_the_exact_neighbours(monkeypatch):
    import codir_edge.compress.bank.hard as hard
    from codir_edge.compress.bank.negatives import NegativeSampler
    from codir_edge.compress.bank.table import TeacherBank

    g = torch.Generator().manual_seed(1)
    centres = torch.randn(20, 512, generator=g)
    feats = centres[torch.arange(400) % 20] + 0.3 * torch.randn(400, 512, generator=g)
    targets = (torch.arange(400) // 20) % 2  # each of the 20 clusters holds both labels, 10 rows each
    bank = TeacherBank(feats.half(), torch.zeros(400, 2).half(), targets)
    sampler = NegativeSampler(targets, 4, False, None, seed=0)
    exact, _ = hard.hard_neighbours(bank, sampler.is_negative, 10, seed=0)
    monkeypatch.setattr(hard, "EXACT_LIMIT", 0)
    approximate, info = hard.hard_neighbours(bank, sampler.is_negative, 10, seed=0)
    assert "random projection" in info["method"]
    shared = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(exact, approximate, strict=True))
    overlap = shared / exact.numel()
    assert overlap > 0.6, overlap
