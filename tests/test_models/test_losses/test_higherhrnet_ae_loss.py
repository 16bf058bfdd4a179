"""HigherHRNetAELoss against the authors' AE 'exp' loss written out as
loops here, and how mmpose 1.x's AssociativeEmbeddingLoss differs."""
import math

import pytest
import torch

from mmpose.models.losses import AssociativeEmbeddingLoss
from mmkp_ext.models.losses import HigherHRNetAELoss


def _official(tags, indices):
    """HigherHRNet / SWAHR ``AELoss('exp')`` per image, then mean over the
    batch (their ``.mean(dim=0)``)."""
    pulls, pushes = [], []
    for b, joints in enumerate(indices):
        K = tags.shape[1]
        flat = tags[b].reshape(K, -1)
        refs, pull = [], 0.0
        for person in joints.tolist():
            vals = [flat[k, i] for k, (i, v) in enumerate(person) if v > 0]
            if not vals:
                continue
            vals = torch.stack(vals)
            refs.append(vals.mean())
            pull = pull + ((vals - refs[-1])**2).mean()
        n = len(refs)
        if n == 0:
            pulls.append(torch.tensor(0.0))
            pushes.append(torch.tensor(0.0))
            continue
        pulls.append(pull / n)
        if n == 1:
            pushes.append(torch.tensor(0.0))
            continue
        r = torch.stack(refs)
        push = torch.exp(-(r[:, None] - r[None])**2).sum() - n
        pushes.append(push / ((n - 1) * n) * 0.5)
    return torch.stack(pulls).mean(), torch.stack(pushes).mean()


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    B, K, H, W = 3, 4, 5, 6
    tags = torch.randn(B, K, H, W, generator=g, dtype=torch.float64)
    counts = [3, 1, 0]  # several people, one person, nobody
    indices = []
    for n in counts:
        idx = torch.randint(0, H * W, (n, K, 1), generator=g)
        vis = (torch.rand(n, K, 1, generator=g) > 0.3).long()
        indices.append(torch.cat([idx, vis], -1))
    indices[0][2, :, 1] = 0  # a person without labelled keypoints
    return tags, indices


def test_matches_official_formula():
    tags, indices = _batch()
    tags.requires_grad_(True)
    pull, push = HigherHRNetAELoss(1.0, 1.0)(tags, indices)
    ref_pull, ref_push = _official(tags, indices)
    assert pull.item() == pytest.approx(ref_pull.item(), rel=1e-12)
    assert push.item() == pytest.approx(ref_push.item(), rel=1e-12)
    g1 = torch.autograd.grad(pull + push, tags)[0]
    g2 = torch.autograd.grad(ref_pull + ref_push, tags)[0]
    torch.testing.assert_close(g1, g2)
    # weights
    pw, ps = HigherHRNetAELoss()(tags, indices)
    assert pw.item() == pytest.approx(0.001 * ref_pull.item())
    assert ps.item() == pytest.approx(0.001 * ref_push.item())


def test_hand_worked_two_people():
    # person tags 0 and 1 (each from 2 keypoints: 0/0 and 0.5/1.5):
    # pull = (0 + 0.25) / 2; push = 0.5 * 2 exp(-1) / 2 = exp(-1) / 2.
    tags = torch.zeros(1, 2, 1, 4, dtype=torch.float64)
    tags[0, 1, 0, 2] = 0.5
    tags[0, 0, 0, 3] = 1.5
    idx = torch.tensor([[[0, 1], [0, 1]], [[3, 1], [2, 1]]])
    pull, push = HigherHRNetAELoss(1.0, 1.0)(tags, [idx])
    assert pull.item() == pytest.approx(0.125)
    assert push.item() == pytest.approx(math.exp(-1) / 2)


def test_mmpose_loss_differs_by_batch_sum_and_diagonal():
    """What we found about mmpose 1.x's AssociativeEmbeddingLoss: its pull
    is the official one summed (not averaged) over images; its push adds
    the diagonal exp(0) terms, i.e. 0.5 / (N_b - 1) per image with N_b >= 2
    people, and is also summed. Gradients are B times ours."""
    tags, indices = _batch(1)
    B = tags.shape[0]
    mm_pull, mm_push = AssociativeEmbeddingLoss(
        loss_weight=1.0, push_loss_factor=0.5)(tags.float(),
                                               [i for i in indices])
    pull, push = HigherHRNetAELoss(1.0, 1.0)(tags, indices)
    assert mm_pull.item() == pytest.approx(B * pull.item(), rel=1e-4)
    n_people = [int((i[:, :, 1] > 0).any(1).sum()) for i in indices]
    offset = sum(0.5 / (n - 1) for n in n_people if n >= 2)
    assert mm_push.item() == pytest.approx(B * push.item() + offset,
                                           rel=1e-4)
    assert offset > 0


def test_gradient_only_at_labelled_pixels():
    tags, indices = _batch(2)
    tags.requires_grad_(True)
    pull, push = HigherHRNetAELoss(1.0, 1.0)(tags, indices)
    (pull + push).backward()
    used = torch.zeros_like(tags, dtype=torch.bool)
    for b, idx in enumerate(indices):
        for person in idx:
            for k, (i, v) in enumerate(person.tolist()):
                if v > 0:
                    used[b, k].view(-1)[i] = True
    assert torch.all(tags.grad[~used] == 0)
    assert tags.grad[used].abs().sum() > 0


def test_empty_and_bad_inputs():
    tags = torch.randn(2, 3, 4, 4, requires_grad=True)
    empty = [torch.zeros(0, 3, 2, dtype=torch.long)] * 2
    pull, push = HigherHRNetAELoss()(tags, empty)
    assert pull.item() == 0 and push.item() == 0
    (pull + push).backward()  # graph stays connected
    loss = HigherHRNetAELoss()
    with pytest.raises(ValueError, match='entries for a batch of 2'):
        loss(tags, empty[:1])
    with pytest.raises(ValueError, match=r'expected \(N, K=3, 2\)'):
        loss(tags, [torch.zeros(1, 2, 2, dtype=torch.long)] * 2)
    bad = torch.tensor([[[16, 1], [0, 0], [0, 0]]])
    with pytest.raises(ValueError, match='outside the 4x4 tag map'):
        loss(tags, [bad, bad])
