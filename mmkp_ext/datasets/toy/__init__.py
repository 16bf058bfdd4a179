"""Deterministic synthetic ("toy") keypoint datasets in COCO format, for
demos and tests: persons (17 COCO keypoints, :mod:`.persons`) and garments
of three categories on one 32-keypoint list (:mod:`.fashion`), drawn with the
shared scene composition and annotation rules of :mod:`.common`. numpy and
OpenCV only."""
from typing import Dict, Sequence, Union

from .common import write_coco_dataset
from .fashion import (FASHION_CATEGORIES, FASHION_FLIP_INDICES,
                      FASHION_KEYPOINT_NAMES, FASHION_METAINFO_FILE,
                      FASHION_NUM_KEYPOINTS, category_slice, coco_categories,
                      generate_fashion_image)
from .persons import (COCO_KEYPOINT_NAMES, COCO_SKELETON, PERSON_CATEGORIES,
                      generate_persons_image)

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
    'make_toy_dataset', 'TOY_KINDS', 'write_coco_dataset',
    'FASHION_CATEGORIES', 'FASHION_FLIP_INDICES', 'FASHION_KEYPOINT_NAMES',
    'FASHION_METAINFO_FILE', 'FASHION_NUM_KEYPOINTS', 'category_slice',
    'coco_categories', 'generate_fashion_image', 'COCO_KEYPOINT_NAMES',
    'COCO_SKELETON', 'PERSON_CATEGORIES', 'generate_persons_image'
]
