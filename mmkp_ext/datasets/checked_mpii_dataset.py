"""mmpose's ``MpiiDataset`` with its annotation file checked when loaded."""
import json
from typing import List, Tuple

from mmengine.fileio import get_local_path

from mmpose.datasets.datasets.body import MpiiDataset
from mmpose.registry import DATASETS
from .annotation_checks import AnnotationError, check_mpii_annotations

__all__ = ['CheckedMpiiDataset']


@DATASETS.register_module()
class CheckedMpiiDataset(MpiiDataset):
    """mmpose's ``MpiiDataset`` whose annotation list is checked by
    :func:`~mmkp_ext.datasets.annotation_checks.check_mpii_annotations`
    (joint count against the metainfo, centres, scales, visibilities)
    before mmpose parses it, so a faulty file fails at dataset construction
    with an error naming the file, the problem and the first list positions
    and images, instead of an IndexError in a transform. Identical to
    ``MpiiDataset`` on valid files."""

    def _load_annotations(self) -> Tuple[List[dict], List[dict]]:
        """Check the file, then load it as ``MpiiDataset`` does."""
        try:
            with get_local_path(self.ann_file) as local_path:
                with open(local_path, encoding='utf-8') as f:
                    anns = json.load(f)
        except FileNotFoundError:
            raise AnnotationError(
                f'annotation file {self.ann_file} does not exist') from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AnnotationError(f'annotation file {self.ann_file} is not '
                                  f'UTF-8 json: {exc}') from None
        check_mpii_annotations(anns, self.ann_file,
                               int(self.metainfo['num_keypoints']))
        return super()._load_annotations()
