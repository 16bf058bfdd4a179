"""Tests of the grouping JSON loader / writer and the inconsistent-pair
listing (``mmkp_ext.grouping.grouping_file``)."""
import json

import numpy as np
import pytest

from mmkp_ext.grouping import (identity_grouping, inconsistent_pairs,
                               load_grouping, save_grouping, undecodable_pairs)


def good(**overrides):
    obj = dict(
        num_keypoints=5,
        reg_group=[0, 1, 0, 2, 1],
        hm_group=[0, 1, 2, 3, 0],
        method='manual',
        source='hand-made',
        counts=dict(reg=[2, 2, 1], hm=[2, 1, 1, 1]))
    obj.update(overrides)
    return obj


def write(tmp_path, obj, name='g.json'):
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return str(path)


def test_load_valid_file_and_dict(tmp_path):
    g = load_grouping(write(tmp_path, good()), num_keypoints=5)
    assert g == good()
    assert load_grouping(good()) == good()


def test_counts_are_computed_when_absent(tmp_path):
    obj = good()
    del obj['counts']
    g = load_grouping(write(tmp_path, obj))
    # counts[g] = number of keypoints k with group[k] == g
    assert g['counts'] == dict(reg=[2, 2, 1], hm=[2, 1, 1, 1])


def test_save_then_load_round_trip(tmp_path):
    path = tmp_path / 'sub' / 'grouping.json'
    saved = save_grouping(
        path,
        np.array([1, 0, 1, 0]), [0, 0, 1, 1],
        'offsets',
        'ann.json',
        meta=dict(linkage='average'))
    loaded = load_grouping(str(path), num_keypoints=4)
    assert loaded == saved
    assert loaded['reg_group'] == [1, 0, 1, 0]
    assert loaded['counts'] == dict(reg=[2, 2], hm=[2, 2])
    assert loaded['meta'] == dict(linkage='average')
    # the file itself is the documented JSON object
    raw = json.loads(path.read_text())
    assert set(raw) == {
        'num_keypoints', 'reg_group', 'hm_group', 'method', 'source', 'counts',
        'meta'
    }


def test_identity_grouping():
    g = identity_grouping(3)
    assert g['reg_group'] == [0, 1, 2] and g['hm_group'] == [0, 1, 2]
    assert g['counts'] == dict(reg=[1, 1, 1], hm=[1, 1, 1])
    assert g['method'] == 'identity'
    with pytest.raises(ValueError, match='num_keypoints'):
        identity_grouping(0)


@pytest.mark.parametrize('overrides, exc, pattern', [
    (dict(reg_group=[0, 1, 0, 2]), ValueError,
     r'reg_group has 4 entries but there are 5 keypoints'),
    (dict(hm_group=[0, 1, 2, 3, 0, 1]), ValueError, r'hm_group has 6 entries'),
    (dict(reg_group=[0, 1, -1, 2, 1]), ValueError,
     r'reg_group\[2\] = -1 is negative'),
    (dict(reg_group=[0, 1, 0, 3, 1]), ValueError,
     r'reg_group uses group indices up to 3 but groups \[2\] are empty'),
    (dict(hm_group=[0, 1, 2.0, 3, 0]), TypeError,
     r'hm_group\[2\] = 2.0 is not an integer'),
    (dict(hm_group=[0, 1, True, 3, 0]), TypeError,
     r'hm_group\[2\] = True is not an integer'),
    (dict(reg_group='01021'), TypeError, 'reg_group must be a list'),
    (dict(num_keypoints='5'), TypeError, 'num_keypoints'),
    (dict(method=''), ValueError, 'method must be a non-empty'),
    (dict(source=None), TypeError, 'source must be a string'),
    (dict(counts=dict(reg=[2, 1, 2], hm=[2, 1, 1, 1])), ValueError,
     r'counts\["reg"\]\[1\] = 1 but reg_group puts 2 keypoints'),
    (dict(counts=dict(reg=[2, 2, 1], hm=[2, 1, 1])), ValueError,
     r'counts\["hm"\] has 3 entries but hm_group has 4 groups'),
    (dict(counts=dict(reg=[2, 2, 1])), ValueError,
     'exactly the keys "reg" and "hm"'),
    (dict(reg_groups=[0]), ValueError, r"unknown field\(s\) \['reg_groups"),
])
def test_invalid_groupings_name_the_problem(tmp_path, overrides, exc, pattern):
    with pytest.raises(exc, match=pattern):
        load_grouping(write(tmp_path, good(**overrides)))


def test_missing_field_wrong_count_bad_json(tmp_path):
    obj = good()
    del obj['hm_group']
    with pytest.raises(ValueError, match=r"lacks the field\(s\) \['hm_group'"):
        load_grouping(obj)
    with pytest.raises(ValueError, match='for 5 keypoints but 7'):
        load_grouping(good(), num_keypoints=7)
    bad = tmp_path / 'bad.json'
    bad.write_text('{"num_keypoints": 3,')
    with pytest.raises(ValueError, match='not valid JSON'):
        load_grouping(str(bad))
    with pytest.raises(FileNotFoundError):
        load_grouping(str(tmp_path / 'nope.json'))
    with pytest.raises(TypeError, match='path or a dict'):
        load_grouping(42)


def test_inconsistent_pairs_hand_case():
    # two categories: keypoints 0-2 and 3-5
    group = [0, 1, 0, 0, 2, 0]
    ranges = [(0, 2), (3, 5)]
    # same group 0: keypoints 0, 2, 3, 5 -> same-category pairs (0,2), (3,5)
    assert inconsistent_pairs(group, ranges) == [(0, 2), (3, 5)]
    # cross-category merges alone are fine
    assert inconsistent_pairs([0, 1, 2, 0, 1, 2], ranges) == []
    assert inconsistent_pairs([0, 1, 2, 3, 4, 5], ranges) == []


def test_inconsistent_pairs_matches_brute_force_on_deepfashion2():
    rng = np.random.default_rng(0)
    group = rng.permutation(np.arange(294) % 62)
    from mmkp_ext.grouping.layout import DEEPFASHION2_CATEGORY_RANGES as R
    cat = np.zeros(294, int)
    for c, (a, b) in enumerate(R):
        cat[a:b + 1] = c
    expected = [(i, j) for i in range(294) for j in range(i + 1, 294)
                if group[i] == group[j] and cat[i] == cat[j]]
    assert len(expected) > 0
    assert inconsistent_pairs(group, 'deepfashion2') == expected


def test_undecodable_pairs():
    ranges = [(0, 3)]
    reg = [0, 0, 1, 1]  # pairs (0,1), (2,3)
    hm = [0, 1, 0, 1]  # pairs (0,2), (1,3)
    assert undecodable_pairs(reg, hm, ranges) == []
    assert undecodable_pairs(reg, [0, 0, 1, 2], ranges) == [(0, 1)]


# ---------------------------------------------------------------------------
# hostile files (issue 16)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('field', ['reg_group', 'hm_group'])
@pytest.mark.parametrize('index', [5, 2**40])
def test_group_index_bounded_before_allocation(tmp_path, field, index):
    """An index >= K cannot be valid (K keypoints, at most K non-empty
    groups): refused by name, before an array of index + 1 entries is
    allocated (2**40 used to raise MemoryError)."""
    group = [0, 1, 0, 2, 1]
    group[3] = index
    with pytest.raises(ValueError,
                       match=rf'{field}\[3\] = {index} is out of range: 5 '
                       r'keypoints .* \[0, 4\]'):
        load_grouping(write(tmp_path, good(**{field: group}, counts=None)))


def test_largest_valid_index_is_accepted():
    g = load_grouping(good(reg_group=[4, 3, 2, 1, 0], counts=None))
    assert g['counts']['reg'] == [1, 1, 1, 1, 1]


def test_non_utf8_file_names_the_path(tmp_path):
    path = tmp_path / 'latin1.json'
    text = json.dumps(good(source='caf\u00e9'), ensure_ascii=False)
    path.write_bytes(text.encode('latin-1'))
    with pytest.raises(ValueError,
                       match=r"grouping file '.*latin1\.json' is not UTF-8"):
        load_grouping(str(path))
    # the same text as UTF-8 loads
    path.write_bytes(text.encode('utf-8'))
    assert load_grouping(str(path))['source'] == 'caf\u00e9'


def test_duplicate_keys_are_refused(tmp_path):
    text = json.dumps(good())[:-1] + ', "hm_group": [0, 0, 0, 0, 0]}'
    path = tmp_path / 'dup.json'
    path.write_text(text)
    with pytest.raises(ValueError,
                       match=r"dup\.json' repeats the key 'hm_group'"):
        load_grouping(str(path))
    # also inside nested objects
    path.write_text(
        json.dumps(good())[:-1] + ', "meta": {"a": 1, "a": 2}}')
    with pytest.raises(ValueError, match="repeats the key 'a'"):
        load_grouping(str(path))


@pytest.mark.parametrize('depth', [40, 100000])
def test_absurd_nesting_is_refused(tmp_path, depth):
    path = tmp_path / 'deep.json'
    path.write_text(
        json.dumps(good())[:-1] + ', "meta": {"x": ' + '[' * depth +
        ']' * depth + '}}')
    with pytest.raises(ValueError, match=r"deep\.json' is nested too deeply"):
        load_grouping(str(path))
    # the nesting the format itself uses is fine
    path.write_text(
        json.dumps(good(meta=dict(pairs=dict(reg=[[0, 2], [1, 4]])))))
    assert load_grouping(str(path))['meta']['pairs']['reg'] == [[0, 2],
                                                                [1, 4]]
