"""Datasets of mmkp_ext: the deterministic synthetic ("toy") COCO-format
generators and the mmpose dataset class of the toy fashion layout.

:func:`make_toy_dataset` writes a dataset to disk; the generators themselves
(:mod:`.toy_persons`, :mod:`.toy_fashion`, :mod:`.toy_common`) need only
numpy and OpenCV.
"""
from typing import Dict, Sequence, Union

from ..grouping.layout import (DEEPFASHION2_CATEGORY_RANGES, KNOWN_LAYOUTS,
                               get_category_keypoint_ranges,
                               keypoint_category_matrix)
from . import transforms  # noqa: F401
from .annotation_checks import (AnnotationError,
                                check_coco_keypoint_annotations)
from .checked_coco_datasets import (CheckedAicDataset, CheckedCocoDataset,
                                    CheckedCrowdPoseDataset)
from .checked_mpii_dataset import CheckedMpiiDataset
from .deepfashion2_full_dataset import (DEEPFASHION2_FULL_METAINFO_FILE,
                                        DeepFashion2FullDataset)
from .toy_common import write_coco_dataset
from .toy_fashion import (FASHION_CATEGORIES, FASHION_FLIP_INDICES,
                          FASHION_KEYPOINT_NAMES, FASHION_METAINFO_FILE,
                          FASHION_NUM_KEYPOINTS, category_slice,
                          coco_categories, generate_fashion_image)
from .toy_fashion_dataset import ToyFashionDataset
from .toy_persons import (COCO_KEYPOINT_NAMES, COCO_SKELETON,
                          PERSON_CATEGORIES, generate_persons_image)

#: kind -> (per-image generator, COCO categories, keypoints per instance)
_TOY_KINDS = {
    'persons': (generate_persons_image, PERSON_CATEGORIES,
                len(COCO_KEYPOINT_NAMES)),
    'fashion': (generate_fashion_image, coco_categories(),
                FASHION_NUM_KEYPOINTS),
}

#: Names accepted by :func:`make_toy_dataset` as ``kind``.
TOY_KINDS = tuple(_TOY_KINDS)


def make_toy_dataset(kind: str,
                     out_dir: str,
                     num_images: int = 200,
                     seed: int = 0,
                     val_fraction: float = 0.2,
                     image_size: Union[int, Sequence[int]] = 256,
                     image_ext: str = 'jpg') -> Dict[str, object]:
    """Generate a deterministic synthetic keypoint dataset in COCO format.

    Writes ``out_dir/images/{train,val}/NNNNNN.<ext>`` and
    ``out_dir/annotations/{train,val}.json``. The same arguments give
    byte-identical json and identical images.

    Args:
        kind: ``'persons'`` (17 COCO keypoints, category ``person``) or
            ``'fashion'`` (3 garment categories on a shared 32-keypoint
            list, see :data:`FASHION_CATEGORIES`).
        out_dir: output directory.
        num_images: number of images, >= 1.
        seed: non-negative random seed.
        val_fraction: fraction of images in the val split, in ``[0, 1)``.
        image_size: int (square) or ``(width, height)`` in pixels, each side
            >= 64.
        image_ext: ``'jpg'`` or ``'png'``.

    Returns:
        dict with ``kind``, ``num_keypoints``, ``out_dir``,
        ``{train,val}_ann_file``, ``{train,val}_img_dir``,
        ``num_{train,val}_images`` and ``num_{train,val}_instances``.

    Raises:
        ValueError: for an unknown ``kind`` or invalid arguments.
    """
    if kind not in _TOY_KINDS:
        raise ValueError(
            f'unknown toy dataset kind {kind!r}; choose one of {TOY_KINDS}')
    generate, categories, num_keypoints = _TOY_KINDS[kind]
    summary = write_coco_dataset(
        out_dir,
        generate,
        categories,
        num_images=num_images,
        seed=seed,
        val_fraction=val_fraction,
        image_size=image_size,
        image_ext=image_ext,
        dataset_name=f'toy_{kind}')
    return dict(kind=kind, num_keypoints=num_keypoints, **summary)


__all__ = [
    'DEEPFASHION2_CATEGORY_RANGES', 'KNOWN_LAYOUTS',
    'get_category_keypoint_ranges', 'keypoint_category_matrix',
    'make_toy_dataset', 'TOY_KINDS', 'ToyFashionDataset',
    'DeepFashion2FullDataset', 'DEEPFASHION2_FULL_METAINFO_FILE',
    'FASHION_CATEGORIES', 'FASHION_KEYPOINT_NAMES', 'FASHION_FLIP_INDICES',
    'FASHION_NUM_KEYPOINTS', 'FASHION_METAINFO_FILE', 'category_slice',
    'COCO_KEYPOINT_NAMES', 'COCO_SKELETON'
]
__all__ += [
    'AnnotationError', 'check_coco_keypoint_annotations',
    'CheckedCocoDataset', 'CheckedCrowdPoseDataset', 'CheckedAicDataset',
    'CheckedMpiiDataset'
]
