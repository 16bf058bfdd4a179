"""The grouping JSON format: keypoint -> output-channel group maps.

A grouping says which keypoints share output channels of a grouped CenterNet
head (see ``docs/grouping_json.md`` for the format, an example and the
validation rules). It holds two independent maps from the original keypoint
index ``k`` to a group index: ``reg_group[k]`` (channels ``2g, 2g+1`` of the
keypoint-regression branch) and ``hm_group[k]`` (channel ``g`` of the
keypoint-heatmap branch).

Everything here is plain Python / numpy: the grouping toolkit, the codec and
the head all read groupings through :func:`load_grouping`.
"""
import json
import os
import os.path as osp
from numbers import Integral
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    'GROUPING_FIELDS', 'load_grouping', 'save_grouping', 'identity_grouping',
    'validate_group', 'group_counts', 'inconsistent_pairs', 'undecodable_pairs'
]

#: Required fields of a grouping JSON object.
GROUPING_FIELDS = ('num_keypoints', 'reg_group', 'hm_group', 'method',
                   'source')
#: Optional fields (``counts`` is filled in by the loader when absent;
#: ``meta`` is a free-form object for tool-specific details).
OPTIONAL_FIELDS = ('counts', 'meta')
#: Deepest nesting of arrays / objects a grouping file may have (the format
#: needs 5: file object > meta > object > list of pairs > pair).
MAX_NESTING = 32


def _is_int(value) -> bool:
    """True for Python / numpy integers, False for bools and floats."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def validate_group(group,
                   num_keypoints: int,
                   field: str = 'group') -> List[int]:
    """Check one keypoint -> group map and return it as a list of ints.

    Args:
        group: sequence (list, tuple or 1-D integer array) of length
            ``num_keypoints``; ``group[k]`` is the group of keypoint ``k``.
        num_keypoints (int): expected length ``K``.
        field (str): name used in error messages (e.g. ``'reg_group'``).

    Returns:
        list[int]: the map. With ``G = max(group) + 1`` every value lies in
        ``[0, G)`` and every group ``0..G-1`` has at least one keypoint.

    Raises:
        TypeError: not a sequence, or an entry that is not an integer (the
            message names the index and the value).
        ValueError: wrong length, a negative entry, an entry >=
            ``num_keypoints`` (K keypoints make at most K non-empty groups;
            checked before anything is sized by the indices), or an empty
            group (the message names them).
    """
    if isinstance(group, np.ndarray):
        if group.ndim != 1:
            raise ValueError(f'{field} must be 1-D, got an array of shape '
                             f'{group.shape}')
        group = group.tolist()
    if isinstance(group, (str, bytes)) or not isinstance(group, Sequence):
        raise TypeError(f'{field} must be a list of integers, got '
                        f'{type(group).__name__}')
    if len(group) != num_keypoints:
        raise ValueError(f'{field} has {len(group)} entries but there are '
                         f'{num_keypoints} keypoints (one group index per '
                         'keypoint is needed)')
    for k, g in enumerate(group):
        if not _is_int(g):
            raise TypeError(f'{field}[{k}] = {g!r} is not an integer')
        if g < 0:
            raise ValueError(f'{field}[{k}] = {g} is negative; group indices '
                             'lie in [0, G)')
        if g >= num_keypoints:
            raise ValueError(
                f'{field}[{k}] = {g} is out of range: {num_keypoints} '
                f'keypoints make at most {num_keypoints} groups, so group '
                f'indices lie in [0, {num_keypoints - 1}]')
    out = [int(g) for g in group]
    if not out:
        raise ValueError(f'{field} is empty')
    num_groups = max(out) + 1
    used = np.zeros(num_groups, dtype=bool)
    used[out] = True
    if not used.all():
        empty = np.flatnonzero(~used).tolist()
        raise ValueError(
            f'{field} uses group indices up to {num_groups - 1} but groups '
            f'{empty} are empty (every group 0..G-1 must hold at least one '
            'keypoint; renumber the groups consecutively)')
    return out


def group_counts(group: Sequence[int]) -> List[int]:
    """Number of keypoints in each group: ``counts[g] = #{k: group[k] == g}``
    for ``g = 0..max(group)``."""
    return np.bincount(np.asarray(group, dtype=np.int64)).tolist()


def _check_counts(counts, reg_group: List[int],
                  hm_group: List[int]) -> Dict[str, List[int]]:
    """Validate a ``counts`` object against the two maps."""
    expected = dict(reg=group_counts(reg_group), hm=group_counts(hm_group))
    if not isinstance(counts, Mapping):
        raise TypeError('counts must be an object {"reg": [...], "hm": [...]}'
                        f', got {type(counts).__name__}')
    if set(counts) != {'reg', 'hm'}:
        raise ValueError('counts must have exactly the keys "reg" and "hm", '
                         f'got {sorted(counts)}')
    for head in ('reg', 'hm'):
        given = counts[head]
        if isinstance(given, np.ndarray):
            given = given.tolist()
        if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
            raise TypeError(f'counts["{head}"] must be a list of integers')
        for g, n in enumerate(given):
            if not _is_int(n):
                raise TypeError(
                    f'counts["{head}"][{g}] = {n!r} is not an integer')
        want = expected[head]
        if len(given) != len(want):
            raise ValueError(f'counts["{head}"] has {len(given)} entries but '
                             f'{head}_group has {len(want)} groups')
        bad = [g for g, (a, b) in enumerate(zip(given, want)) if a != b]
        if bad:
            g = bad[0]
            raise ValueError(
                f'counts["{head}"][{g}] = {given[g]} but {head}_group puts '
                f'{want[g]} keypoints in group {g} (counts must equal the '
                'number of keypoints per group)')
    return expected


def _validate(obj: Mapping,
              num_keypoints: Optional[int] = None,
              where: str = 'grouping') -> dict:
    """Validate a grouping object; return a normalised copy."""
    if not isinstance(obj, Mapping):
        raise TypeError(f'{where} must be a JSON object / dict, got '
                        f'{type(obj).__name__}')
    missing = [f for f in GROUPING_FIELDS if f not in obj]
    if missing:
        raise ValueError(f'{where} lacks the field(s) {missing}; required: '
                         f'{list(GROUPING_FIELDS)}')
    unknown = sorted(set(obj) - set(GROUPING_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise ValueError(
            f'{where} has unknown field(s) {unknown}; allowed: '
            f'{list(GROUPING_FIELDS + OPTIONAL_FIELDS)} (put tool-specific '
            'details under "meta")')
    k = obj['num_keypoints']
    if not _is_int(k) or k < 1:
        raise TypeError(f'{where}: num_keypoints must be an integer >= 1, '
                        f'got {k!r}')
    k = int(k)
    if num_keypoints is not None and k != num_keypoints:
        raise ValueError(f'{where} is for {k} keypoints but {num_keypoints} '
                         'keypoints are expected')
    for field in ('method', 'source'):
        if not isinstance(obj[field], str):
            raise TypeError(f'{where}: {field} must be a string, got '
                            f'{obj[field]!r}')
    if not obj['method']:
        raise ValueError(f'{where}: method must be a non-empty string')
    reg_group = validate_group(obj['reg_group'], k, 'reg_group')
    hm_group = validate_group(obj['hm_group'], k, 'hm_group')
    if obj.get('counts') is None:
        counts = dict(reg=group_counts(reg_group), hm=group_counts(hm_group))
    else:
        counts = _check_counts(obj['counts'], reg_group, hm_group)
    meta = obj.get('meta')
    if meta is not None and not isinstance(meta, Mapping):
        raise TypeError(f'{where}: meta must be an object, got '
                        f'{type(meta).__name__}')
    out = dict(
        num_keypoints=k,
        reg_group=reg_group,
        hm_group=hm_group,
        method=obj['method'],
        source=obj['source'],
        counts=counts)
    if meta is not None:
        out['meta'] = dict(meta)
    return out


def load_grouping(source: Union[str, os.PathLike, Mapping],
                  num_keypoints: Optional[int] = None) -> dict:
    """Load and validate a grouping.

    Args:
        source: path of a grouping JSON file, or an already parsed dict
            with the same fields.
        num_keypoints (int, optional): if given, the grouping must be for
            exactly this many keypoints.

    Returns:
        dict: ``num_keypoints`` (int), ``reg_group`` / ``hm_group`` (lists
        of ``num_keypoints`` ints), ``method`` and ``source`` (str),
        ``counts`` (``{'reg': [...], 'hm': [...]}``, keypoints per group;
        computed when the input has none) and ``meta`` when present.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError / TypeError: the content breaks a rule of
            ``docs/grouping_json.md`` (the message names the field, the
            index and the value), or the file is not UTF-8 JSON, repeats a
            key within an object or nests deeper than :data:`MAX_NESTING`
            (the message names the path).
    """
    if isinstance(source, Mapping):
        return _validate(source, num_keypoints)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError('load_grouping expects a path or a dict, got '
                        f'{type(source).__name__}')
    path = os.fspath(source)
    if not osp.isfile(path):
        raise FileNotFoundError(f'grouping file {path!r} does not exist')
    try:
        with open(path, encoding='utf-8') as f:
            obj = json.load(f, object_pairs_hook=_refuse_duplicate_keys)
    except UnicodeDecodeError as e:
        raise ValueError(f'grouping file {path!r} is not UTF-8 text: '
                         f'{e}') from None
    except json.JSONDecodeError as e:
        raise ValueError(f'grouping file {path!r} is not valid JSON: '
                         f'{e}') from None
    except _DuplicateKey as e:
        raise ValueError(f'grouping file {path!r} repeats the key '
                         f'{e.args[0]!r} in one object (JSON readers '
                         'disagree on which value wins)') from None
    except RecursionError:
        raise ValueError(f'grouping file {path!r} is nested too deeply '
                         f'(more than {MAX_NESTING} levels)') from None
    if _nesting_depth(obj, MAX_NESTING) > MAX_NESTING:
        raise ValueError(f'grouping file {path!r} is nested too deeply '
                         f'(more than {MAX_NESTING} levels)')
    return _validate(obj, num_keypoints, where=f'grouping file {path!r}')


class _DuplicateKey(Exception):
    """A JSON object with a repeated key (internal)."""


def _refuse_duplicate_keys(pairs: List[Tuple[str, object]]) -> dict:
    """``object_pairs_hook`` of :func:`json.load` that refuses repeated
    keys instead of keeping the last value silently."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _nesting_depth(obj, limit: int) -> int:
    """Nesting depth of lists / dicts in ``obj`` (a scalar is 0), computed
    without recursion; stops counting once past ``limit``."""
    deepest = 0
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return deepest


def save_grouping(path: Union[str, os.PathLike],
                  reg_group: Sequence[int],
                  hm_group: Sequence[int],
                  method: str,
                  source: str,
                  counts: Optional[Mapping] = None,
                  meta: Optional[Mapping] = None) -> dict:
    """Validate a grouping and write it as JSON (creating parent folders).

    Args:
        path: output file.
        reg_group, hm_group: keypoint -> group maps of equal length ``K``.
        method (str): how the grouping was made (e.g. ``'identity'``,
            ``'manual'``, ``'offsets'``, ``'conv_weights'``).
        source (str): what it was computed from (annotation file,
            checkpoint, paper table...).
        counts (dict, optional): ``{'reg': [...], 'hm': [...]}``; checked
            when given, computed otherwise.
        meta (dict, optional): free-form JSON-serialisable details.

    Returns:
        dict: the validated grouping as :func:`load_grouping` returns it
        (reading the file back gives an equal dict).
    """
    reg_group = (
        reg_group.tolist() if isinstance(reg_group, np.ndarray) else reg_group)
    hm_group = (
        hm_group.tolist() if isinstance(hm_group, np.ndarray) else hm_group)
    obj = dict(
        num_keypoints=len(reg_group),
        reg_group=reg_group,
        hm_group=hm_group,
        method=method,
        source=source,
        counts=counts)
    if meta is not None:
        obj['meta'] = meta
    grouping = _validate(obj)
    path = os.fspath(path)
    parent = osp.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    # One field per line, integer lists kept on one line each: diffs of two
    # groupings stay readable.
    lines = ['{']
    items = list(grouping.items())
    for i, (key, value) in enumerate(items):
        end = ',' if i < len(items) - 1 else ''
        lines.append(f'  {json.dumps(key)}: {json.dumps(value)}{end}')
    lines.append('}')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return grouping


def identity_grouping(num_keypoints: int) -> dict:
    """The ungrouped layout: every keypoint its own regression and heatmap
    group (``reg_group = hm_group = [0, 1, ..., K-1]``)."""
    if not _is_int(num_keypoints) or num_keypoints < 1:
        raise ValueError('num_keypoints must be an integer >= 1, got '
                         f'{num_keypoints!r}')
    ident = list(range(int(num_keypoints)))
    return _validate(
        dict(
            num_keypoints=int(num_keypoints),
            reg_group=ident,
            hm_group=list(ident),
            method='identity',
            source=''))


def _keypoint_class(category_ranges, num_keypoints: int) -> np.ndarray:
    """Class index of every keypoint (-1 where no category owns it)."""
    # layout imports this module at its top: import it here
    from .layout import get_category_keypoint_ranges, keypoint_category_matrix
    ranges = get_category_keypoint_ranges(category_ranges, num_keypoints)
    owned = keypoint_category_matrix(ranges, num_keypoints)  # (C, K)
    return np.where(owned.any(0), owned.argmax(0), -1).astype(np.int64)


def inconsistent_pairs(group: Sequence[int],
                       category_ranges) -> List[Tuple[int, int]]:
    """Same-category keypoint pairs that share a group.

    Two keypoints of one category in one regression group would need two
    different targets in the same cell of one object (the "inconsistent
    pair" of the method spec); in one heatmap group they share a channel.

    Args:
        group: keypoint -> group map of length ``K``.
        category_ranges: inclusive ``(first, last)`` keypoint ranges per
            category, or a layout name accepted by
            :func:`mmkp_ext.grouping.layout.
            get_category_keypoint_ranges` (``'deepfashion2'``, ``'coco'``...).

    Returns:
        list[tuple[int, int]]: pairs ``(k1, k2)`` with ``k1 < k2``, sorted.
    """
    group = np.asarray(validate_group(group, len(group)), dtype=np.int64)
    cls = _keypoint_class(category_ranges, len(group))
    same = (group[:, None] == group[None, :]) & (cls[:, None] == cls[None, :])
    same &= (cls >= 0)[:, None]
    k1, k2 = np.nonzero(np.triu(same, k=1))
    return [(int(a), int(b)) for a, b in zip(k1, k2)]


def undecodable_pairs(reg_group: Sequence[int], hm_group: Sequence[int],
                      category_ranges) -> List[Tuple[int, int]]:
    """Same-category pairs merged in BOTH heads: their regression target and
    their heatmap channel coincide, so decoding cannot tell them apart (the
    spec's "matrix of ambiguous decoding" counts these)."""
    reg = set(inconsistent_pairs(reg_group, category_ranges))
    return [
        p for p in inconsistent_pairs(hm_group, category_ranges) if p in reg
    ]
