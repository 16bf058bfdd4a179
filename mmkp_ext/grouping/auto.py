"""Automatic grouping of both heads in one call (what
``tools/analysis_tools/group_keypoints.py`` runs).

Per head: a distance matrix (offsets, anti-offsets or conv rows), one
dendrogram, optional restrictions; across heads: the matrix of ambiguous
decoding, the minimal decodable counts and the chosen cut. numpy / scipy /
scikit-learn only.
"""
from typing import Dict, Optional, Sequence

import numpy as np

from .clustering import build_linkage, cut
from .consensus import ari_curve, best_consensus_count
from .decodability import (ambiguity_matrix, inconsistent_counts,
                           minimal_decodable)
from .distances import euclidean_distances, head_row_features

__all__ = ['DISTANCES', 'RESTRICT', 'head_distances', 'auto_grouping',
           'consensus_summary']

#: Distance kinds per head: mean offsets (Euclidean), anti-offsets (the
#: same distances clustered negated with complete linkage), conv rows.
DISTANCES = ('offsets', 'anti_offsets', 'conv')
#: Which heads get restrictions (no same-category pair in one group).
RESTRICT = ('both', 'reg', 'hm', 'none')


def head_distances(distance: str,
                   kind: str,
                   num_keypoints: int,
                   offsets: Optional[np.ndarray] = None,
                   weight: Optional[np.ndarray] = None) -> np.ndarray:
    """``(K, K)`` distances of one head.

    Args:
        distance (str): one of :data:`DISTANCES`.
        kind (str): ``'reg'`` or ``'hm'`` (which conv rows to read).
        num_keypoints (int): ``K``.
        offsets: ``(K, 2)`` mean offsets (for ``'offsets'`` /
            ``'anti_offsets'``).
        weight: last-conv weight of the ungrouped branch (for ``'conv'``).
    """
    if distance not in DISTANCES:
        raise ValueError(f'distance must be one of {DISTANCES}, got '
                         f'{distance!r}')
    if distance == 'conv':
        if weight is None:
            raise ValueError(f'{kind}: conv distances need checkpoint weights')
        return euclidean_distances(
            head_row_features(weight, kind, num_keypoints))
    if offsets is None:
        raise ValueError(f'{kind}: {distance} distances need annotation '
                         'offsets')
    offsets = np.asarray(offsets)
    if offsets.shape != (num_keypoints, 2):
        raise ValueError(f'offsets have shape {offsets.shape}, expected '
                         f'({num_keypoints}, 2)')
    return euclidean_distances(offsets)


def _head_linkage(distances, distance: str, linkage: str, categories,
                  restricted: bool) -> np.ndarray:
    anti = distance == 'anti_offsets'
    # Anti-offsets are defined with complete linkage (spec).
    method = 'complete' if anti else linkage
    return build_linkage(distances, method,
                         categories if restricted else None, anti)


def auto_grouping(reg_distances: np.ndarray,
                  hm_distances: np.ndarray,
                  categories: Sequence[int],
                  reg_clusters: Optional[int] = None,
                  hm_clusters: Optional[int] = None,
                  reg_distance: str = 'offsets',
                  hm_distance: str = 'offsets',
                  linkage: str = 'average',
                  restrict: str = 'both',
                  min_count: int = 1,
                  allow_undecodable: bool = False) -> Dict:
    """Cluster both heads and pick (or check) the cluster counts.

    Args:
        reg_distances, hm_distances: ``(K, K)`` distances per head.
        categories: ``(K,)`` category per keypoint (``-1`` none).
        reg_clusters, hm_clusters (int, optional): cluster counts; ``None``
            = the minimal decodable choice (fewest ``2 n_reg + n_hm``) among
            the allowed counts (``>= min_count``; a restricted head also
            ``>=`` its smallest count without same-category merges).
        reg_distance, hm_distance (str): kinds (:data:`DISTANCES`), for the
            linkage choice (anti-offsets: complete on negated distances).
        linkage (str): linkage of non-anti heads (spec: ``'average'``).
        restrict (str): one of :data:`RESTRICT`.
        min_count (int): smallest count of the ambiguity matrix ranges.
        allow_undecodable (bool): accept explicit counts whose grouping
            merges a same-category pair in both heads.

    Returns:
        dict with ``reg_group`` / ``hm_group`` (lists), ``Z_reg`` / ``Z_hm``
        (linkages), ``ambiguity`` / ``reg_counts`` / ``hm_counts`` (the
        matrix and its ranges), ``inconsistent`` (per head, counts per
        cluster count, ``(K + 1,)``) and ``meta`` (JSON-ready summary).

    Raises:
        ValueError: bad arguments, a count below a restricted head's minimum,
            or undecodable explicit counts (without ``allow_undecodable``).
    """
    if restrict not in RESTRICT:
        raise ValueError(f'restrict must be one of {RESTRICT}, got '
                         f'{restrict!r}')
    cat = np.asarray(categories, dtype=np.int64)
    k = len(cat)
    for name, d in (('reg_distances', reg_distances), ('hm_distances',
                                                       hm_distances)):
        if np.shape(d) != (k, k):
            raise ValueError(f'{name} has shape {np.shape(d)} but there are '
                             f'{k} keypoints')
    if not 1 <= min_count <= k:
        raise ValueError(f'min_count must lie in [1, {k}], got {min_count}')
    restricted = dict(reg=restrict in ('both', 'reg'),
                      hm=restrict in ('both', 'hm'))
    Z = dict(
        reg=_head_linkage(reg_distances, reg_distance, linkage, cat,
                          restricted['reg']),
        hm=_head_linkage(hm_distances, hm_distance, linkage, cat,
                         restricted['hm']))
    incons = {h: inconsistent_counts(Z[h], cat) for h in Z}
    # Smallest count without a same-category merge (restricted heads only).
    lowest = {
        h: int(np.flatnonzero(incons[h] == 0).min()) if restricted[h] else 1
        for h in Z
    }
    wanted = dict(reg=reg_clusters, hm=hm_clusters)
    for h, n in wanted.items():
        if n is None:
            continue
        if not 1 <= int(n) <= k:
            raise ValueError(f'{h}_clusters must lie in [1, {k}], got {n}')
        if int(n) < lowest[h]:
            raise ValueError(
                f'{h}: with restrictions {n} clusters would merge '
                f'{int(incons[h][int(n)])} same-category pairs; this '
                f'dendrogram needs at least {lowest[h]} clusters')
    counts = {h: np.arange(max(min_count, lowest[h]), k + 1) for h in Z}
    # An explicit count outside the range is added so that it is looked up.
    for h, n in wanted.items():
        if n is not None:
            counts[h] = np.union1d(counts[h], [int(n)])
    amb, reg_counts, hm_counts = ambiguity_matrix(Z['reg'], Z['hm'], cat,
                                                  counts['reg'], counts['hm'])
    minimal = minimal_decodable(amb, reg_counts, hm_counts)
    if wanted['reg'] is None and wanted['hm'] is None:
        n_reg, n_hm = minimal
    elif wanted['reg'] is None or wanted['hm'] is None:
        # The other head fixed: the fewest clusters decodable with it.
        fixed = 'reg' if wanted['hm'] is None else 'hm'
        if fixed == 'reg':
            row = amb[np.searchsorted(reg_counts, wanted['reg'])]
            ok = np.flatnonzero(row == 0)
            n_reg = int(wanted['reg'])
            n_hm = int(hm_counts[ok.min()]) if ok.size else None
        else:
            col = amb[:, np.searchsorted(hm_counts, wanted['hm'])]
            ok = np.flatnonzero(col == 0)
            n_hm = int(wanted['hm'])
            n_reg = int(reg_counts[ok.min()]) if ok.size else None
        if n_reg is None or n_hm is None:
            raise ValueError(f'no count of the other head is decodable with '
                             f'{fixed}_clusters={wanted[fixed]}')
    else:
        n_reg, n_hm = int(wanted['reg']), int(wanted['hm'])
    ambiguous = int(amb[np.searchsorted(reg_counts, n_reg),
                        np.searchsorted(hm_counts, n_hm)])
    if ambiguous and not allow_undecodable:
        raise ValueError(
            f'{n_reg} regression / {n_hm} heatmap clusters merge {ambiguous} '
            'same-category pairs in both heads (undecodable); the fewest '
            f'decodable output channels are at {minimal[0]} / {minimal[1]} '
            '(or pass allow_undecodable)')
    reg_group = cut(Z['reg'], n_reg).tolist()
    hm_group = cut(Z['hm'], n_hm).tolist()
    meta = dict(
        num_reg_clusters=n_reg,
        num_hm_clusters=n_hm,
        reg_distance=reg_distance,
        hm_distance=hm_distance,
        reg_linkage='complete' if reg_distance == 'anti_offsets' else linkage,
        hm_linkage='complete' if hm_distance == 'anti_offsets' else linkage,
        restrict=restrict,
        inconsistent_pairs=dict(reg=int(incons['reg'][n_reg]),
                                hm=int(incons['hm'][n_hm])),
        undecodable_pairs=ambiguous,
        minimal_decodable=list(minimal),
        restricted_minimum=dict(reg=lowest['reg'], hm=lowest['hm']),
        count_ranges=dict(reg=[int(reg_counts[0]), int(reg_counts[-1])],
                          hm=[int(hm_counts[0]), int(hm_counts[-1])]))
    return dict(
        reg_group=reg_group,
        hm_group=hm_group,
        Z_reg=Z['reg'],
        Z_hm=Z['hm'],
        ambiguity=amb,
        reg_counts=reg_counts,
        hm_counts=hm_counts,
        inconsistent=incons,
        meta=meta)


def consensus_summary(Z_a: np.ndarray, Z_b: np.ndarray,
                      counts: Sequence[int], chosen: int) -> Dict:
    """ARI curve of two dendrograms over ``counts`` and its summary:
    ``{'counts', 'ari', 'best_count', 'best_ari', 'ari_at_chosen'}``."""
    counts = np.asarray(counts)
    ari = ari_curve(Z_a, Z_b, counts)
    best = best_consensus_count(ari, counts)
    at = ari_curve(Z_a, Z_b, [chosen])[0]
    return dict(
        counts=counts.tolist(),
        ari=ari.tolist(),
        best_count=best,
        best_ari=float(ari[counts == best][0]),
        ari_at_chosen=float(at))
