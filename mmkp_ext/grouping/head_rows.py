"""Row averaging for initialising a grouped head from an ungrouped one
(numpy; the torch-side checkpoint reader / writer is
:mod:`mmkp_ext.converters.grouped_centernet_head`).

The last (1x1) convolution of a branch maps features to one row per output
channel. Grouping keypoints ``k in group g`` into one channel starts from the
mean of their rows (weights and biases): for the heatmap branch row ``g`` =
mean of rows ``k``; for the regression branch row ``2g`` = mean of rows
``2k`` (x) and row ``2g + 1`` = mean of rows ``2k + 1`` (y), separately.
Because the convolution is linear, the grouped output of channel ``g`` then
equals the mean of its members' ungrouped outputs.
"""
from typing import Optional, Sequence, Tuple

import numpy as np

from .grouping_file import validate_group

__all__ = ['mean_matrix', 'group_rows']


def mean_matrix(group: Sequence[int]) -> np.ndarray:
    """``(G, K)`` float64 matrix ``M`` with ``M[g, k] = 1 / |g|`` for the
    members ``k`` of group ``g`` (so ``M @ rows`` are the group means)."""
    group = np.asarray(validate_group(group, len(group)), dtype=np.int64)
    num_groups = group.max() + 1
    member = (np.arange(num_groups)[:, None] == group[None, :])
    return member / member.sum(1, keepdims=True)


def group_rows(
        weight: np.ndarray,
        bias: Optional[np.ndarray],
        group: Sequence[int],
        kind: str,
        name: str = 'weight') -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Grouped rows of a last convolution: member means.

    Args:
        weight: ``(R, ...)`` array, ``R = 2K`` for ``kind='reg'`` (rows
            ``2k`` / ``2k+1`` = x / y of keypoint ``k``) or ``R = K`` for
            ``kind='hm'``; trailing dimensions (input channels, kernel) kept.
        bias: ``(R,)`` array or ``None``.
        group: keypoint -> group map of length ``K``.
        kind (str): ``'reg'`` or ``'hm'``.
        name (str): what ``weight`` is, for error messages.

    Returns:
        ``(weight, bias)`` with ``2G`` / ``G`` rows, in the input dtype (the
        means are taken in float64).

    Raises:
        ValueError: the row count does not fit the grouping's ``K``.
    """
    k = len(group)
    per_kp = {'reg': 2, 'hm': 1}
    if kind not in per_kp:
        raise ValueError(f"kind must be 'reg' or 'hm', got {kind!r}")
    weight = np.asarray(weight)
    rows = per_kp[kind] * k
    if weight.ndim < 1 or weight.shape[0] != rows:
        raise ValueError(
            f'{name} has {weight.shape[0] if weight.ndim else 0} output rows '
            f'but the grouping is for {k} keypoints ({rows} rows expected '
            f'for an ungrouped {kind} branch)')
    if bias is not None:
        bias = np.asarray(bias)
        if bias.shape != (rows, ):
            raise ValueError(f'the bias of {name} has shape {bias.shape}, '
                             f'expected ({rows},)')
    mean = mean_matrix(group)  # (G, K)

    def average(arr):
        # (R, ...) -> (K, per_kp, rest): x / y rows of one keypoint side by
        # side, so one matrix product averages both separately.
        flat = arr.astype(np.float64).reshape(k, per_kp[kind], -1)
        out = np.einsum('gk,kcd->gcd', mean, flat)
        return out.reshape((-1, ) + arr.shape[1:]).astype(arr.dtype)

    return average(weight), (None if bias is None else average(bias))
