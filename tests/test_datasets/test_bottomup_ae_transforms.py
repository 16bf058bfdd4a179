"""Tests of ``BottomupIgnoreMask`` and its RLE / polygon rasterisers: RLE
decoding against the COCO API's encoder, hand-made regions, which
annotations are ignored, the warp / flip into the input frame against
OpenCV done by hand, and what mmpose's ``BottomupGetHeatmapMask`` misses."""
import cv2
import numpy as np
import pytest
import xtcocotools.mask as cocomask

import mmkp_ext  # noqa: F401  (registration)
from mmkp_ext.datasets.transforms import (BottomupIgnoreMask,
                                          polygons_to_mask, rle_to_mask)
from mmpose.registry import TRANSFORMS


def test_rle_decoding_matches_coco_api_encoder():
    rng = np.random.default_rng(0)
    mask = (rng.random((23, 41)) > 0.55).astype(np.uint8)
    mask[0, 0] = 1  # a run of ones first: counts start with a 0
    rle = cocomask.encode(np.asfortranarray(mask))
    compressed = dict(size=rle['size'], counts=rle['counts'].decode())
    np.testing.assert_array_equal(rle_to_mask(compressed), mask)
    np.testing.assert_array_equal(rle_to_mask(rle), mask)  # bytes counts
    # uncompressed counts written out by hand: 2x3 image, column-major
    # [[0, 1, 1], [0, 0, 1]] -> F-order 0 0 1 0 1 1 -> runs 2, 1, 1, 2
    hand = rle_to_mask(dict(size=[2, 3], counts=[2, 1, 1, 2]))
    np.testing.assert_array_equal(hand, [[0, 1, 1], [0, 0, 1]])
    with pytest.raises(ValueError, match='sum to 5'):
        rle_to_mask(dict(size=[2, 3], counts=[2, 1, 2]))


def test_polygon_rectangle():
    m = polygons_to_mask([[2, 1, 6, 1, 6, 4, 2, 4]], (8, 10))
    expected = np.zeros((8, 10), np.uint8)
    expected[1:5, 2:7] = 1  # boundary pixels belong to the region
    np.testing.assert_array_equal(m, expected)
    assert polygons_to_mask([[1, 1, 2, 2]], (4, 4)).sum() == 0  # < 3 points


def annotations():
    """60x40 image: a labelled person, a crowd (uncompressed RLE), a
    person without keypoints (polygon) and one without segmentation."""
    crowd = np.zeros((40, 60), np.uint8)
    crowd[5:15, 40:55] = 1
    flat = crowd.ravel(order='F')
    edges = np.flatnonzero(np.diff(flat)) + 1
    counts = np.diff(np.r_[0, edges, flat.size]).tolist()
    kp_person = [10, 10, 2] + [0] * 48
    return [
        dict(iscrowd=0, num_keypoints=1, keypoints=kp_person,
             bbox=[5, 5, 10, 20], segmentation=[[5, 5, 15, 5, 15, 25, 5, 25]]),
        dict(iscrowd=1, num_keypoints=0, keypoints=[0] * 51,
             bbox=[40, 5, 15, 10], segmentation=dict(size=[40, 60],
                                                     counts=counts)),
        dict(iscrowd=0, num_keypoints=0, keypoints=[0] * 51,
             bbox=[20, 25, 10, 10],
             segmentation=[[20, 25, 29, 25, 29, 34, 20, 34]]),
        dict(iscrowd=0, keypoints=[0] * 51, bbox=[32, 20, 6, 8],
             segmentation=None),
    ], crowd


def expected_ignore(crowd):
    ignore = crowd.copy()
    ignore[25:35, 20:30] = 1  # polygon, boundary included
    ignore[20:29, 32:39] = 1  # box fallback x 32..38, y 20..28
    return ignore


def test_ignore_regions_identity_frame():
    anns, crowd = annotations()
    t = TRANSFORMS.build(dict(type='BottomupIgnoreMask'))
    res = t(dict(img_shape=(40, 60), raw_ann_info=anns))
    np.testing.assert_array_equal(res['heatmap_mask'],
                                  expected_ignore(crowd) == 0)
    assert res['heatmap_mask'].dtype == bool
    # without the box fallback the unsegmented person stays
    res = BottomupIgnoreMask(box_fallback=False)(
        dict(img_shape=(40, 60), raw_ann_info=anns))
    ignore = expected_ignore(crowd)
    ignore[20:29, 32:39] = crowd[20:29, 32:39]
    np.testing.assert_array_equal(res['heatmap_mask'], ignore == 0)


def test_warp_and_flip_into_the_input_frame():
    anns, crowd = annotations()
    warp = cv2.getRotationMatrix2D((30, 20), 20, 0.8)
    warp[:, 2] += (4, -3)
    res = BottomupIgnoreMask()(
        dict(img_shape=(40, 60), raw_ann_info=anns, warp_mat=warp,
             input_size=(48, 48), flip=True, flip_direction='horizontal'))
    valid = (1 - expected_ignore(crowd)).astype(np.float32)
    # padding outside the warped image is ignored (border value 0)
    by_hand = cv2.warpAffine(valid, warp, (48, 48), flags=cv2.INTER_LINEAR,
                             borderValue=0)[:, ::-1] > 0.5
    np.testing.assert_array_equal(res['heatmap_mask'], by_hand)
    assert res['heatmap_mask'].shape == (48, 48)
    assert 0 < res['heatmap_mask'].mean() < 1


def test_invalid_segs_used_without_raw_annotations_and_errors():
    _, crowd = annotations()
    seg = [[0, 0, 9, 0, 9, 9, 0, 9]]
    res = BottomupIgnoreMask()(dict(img_shape=(20, 20), invalid_segs=[seg]))
    assert res['heatmap_mask'][:10, :10].sum() == 0
    assert res['heatmap_mask'][10:, 10:].all()
    with pytest.raises(ValueError, match='RLE of size'):
        BottomupIgnoreMask()(
            dict(img_shape=(20, 20),
                 raw_ann_info=[dict(iscrowd=1, segmentation=dict(
                     size=[40, 60], counts=[2400]))]))
    with pytest.raises(ValueError, match='needs warp_mat'):
        BottomupIgnoreMask()(dict(img_shape=(20, 20), input_size=(16, 16)))


def test_mmpose_mask_transform_misses_crowd_rle():
    """Why the transform exists: mmpose's BottomupGetHeatmapMask skips a
    crowd annotation's RLE dict (the region stays valid)."""
    anns, crowd = annotations()
    stock = TRANSFORMS.build(dict(type='BottomupGetHeatmapMask'))
    res = stock(dict(img_shape=(40, 60), input_size=(60, 40),
                     invalid_segs=[anns[1]['segmentation']]))
    assert res['heatmap_mask'][crowd > 0].all()
    ours = BottomupIgnoreMask()(
        dict(img_shape=(40, 60), invalid_segs=[anns[1]['segmentation']]))
    assert not ours['heatmap_mask'][crowd > 0].any()
