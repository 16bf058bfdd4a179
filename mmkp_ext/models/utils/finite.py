"""Non-finite head outputs: warn, clean, and mark the keypoints they touch.

A NaN or Inf in a head's output (diverged training, a bad checkpoint,
overflow under mixed precision) must not reach decoding silently: a NaN
heatmap pixel wins every ``argmax``, a NaN coordinate becomes a NaN keypoint
that xtcocotools' OKS counts as a match. Heads call
:func:`sanitize_outputs` on the tensors they decode: it warns with
:class:`NonFiniteOutputWarning` (naming each output and its count of
non-finite values), returns float32 copies with every non-finite value
replaced by 0, and a ``(B, K)`` mask of the keypoints any replaced value
belongs to; the head then gives those keypoints score 0 (their coordinates
are finite: decoded from the cleaned outputs).
"""
import warnings
from typing import Tuple

import torch
from torch import Tensor

__all__ = ['NonFiniteOutputWarning', 'sanitize_outputs']


class NonFiniteOutputWarning(RuntimeWarning):
    """A head produced NaN/Inf outputs; the affected keypoints got score 0."""


def sanitize_outputs(head: str, num_keypoints: int,
                     **outputs: Tensor) -> Tuple[Tuple[Tensor, ...], Tensor]:
    """Replace non-finite values of head outputs by 0 and find the
    keypoints they belong to.

    Args:
        head (str): Name used in the warning (e.g. ``'SoftArgmaxHead'``).
        num_keypoints (int): ``K``.
        **outputs (Tensor): Named outputs, each ``(B, C, ...)`` or
            ``(B, C)``. When ``C`` is a multiple of ``K``, channel ``c``
            belongs to keypoint ``c % K`` (heatmaps ``(B, K, H, W)``, tags
            ``(B, L*K, H, W)``, coordinates ``(B, K, 2)``, scores
            ``(B, K)``); otherwise (one tag map shared by all keypoints)
            every channel belongs to every keypoint.

    Returns:
        tuple:
        - cleaned (tuple[Tensor]): the outputs in argument order, float32
          (also under autocast: numpy has no bfloat16), non-finite values
          replaced by 0; unchanged values are bit-identical.
        - bad (Tensor): ``(B, K)`` bool, True where any output has a
          non-finite value in a channel of that keypoint.

    Warns:
        NonFiniteOutputWarning: once per call with non-finite values, e.g.
        ``"SoftArgmaxHead: non-finite head outputs: heatmap logits 3 of
        768 values (NaN 3, Inf 0); 1 keypoint(s) get score 0"``.
    """
    cleaned, bad, problems = [], None, []
    for name, t in outputs.items():
        t = t.float()
        finite = torch.isfinite(t)
        B, C = t.shape[:2]
        chan_bad = ~finite.reshape(B, C, -1).all(dim=-1)  # (B, C)
        if C % num_keypoints == 0:
            # (B, L*K) -> (B, L, K) -> any over the L groups: (B, K).
            kpt_bad = chan_bad.reshape(B, -1, num_keypoints).any(dim=1)
        else:
            kpt_bad = chan_bad.any(dim=1, keepdim=True).expand(
                B, num_keypoints)
        bad = kpt_bad if bad is None else bad | kpt_bad
        if chan_bad.any():
            nan = int(torch.isnan(t).sum())
            total = int((~finite).sum())
            problems.append(f'{name} {total} of {t.numel()} values '
                            f'(NaN {nan}, Inf {total - nan})')
            t = torch.where(finite, t, torch.zeros((), dtype=t.dtype,
                                                   device=t.device))
        cleaned.append(t)
    if problems:
        warnings.warn(
            f'{head}: non-finite head outputs: {"; ".join(problems)}; '
            f'{int(bad.sum())} keypoint(s) get score 0',
            NonFiniteOutputWarning,
            stacklevel=2)
    return tuple(cleaned), bad
