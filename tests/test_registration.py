"""`import mmkp_ext` registers every component into mmpose's registries."""
import pytest
from mmengine.registry import DefaultScope

import mmkp_ext  # noqa: F401
from mmpose.registry import (DATASETS, KEYPOINT_CODECS, METRICS,
                             MODEL_WRAPPERS, MODELS, TRANSFORMS)

EXPECTED = [
    (MODELS, 'SoftArgmaxHead', 'mmkp_ext.models.heads.soft_argmax_head'),
    (DATASETS, 'ToyFashionDataset',
     'mmkp_ext.datasets.toy_fashion_dataset'),
    (MODEL_WRAPPERS, 'MMKPDistributedDataParallel',
     'mmkp_ext.engine.cpu_ddp_wrapper'),
    # Grouped CenterNet
    (MODELS, 'DLANet', 'mmkp_ext.models.backbones.dla'),
    (MODELS, 'DLAUpNeck', 'mmkp_ext.models.necks.dla_up_neck'),
    (MODELS, 'CenterNetPoseHead',
     'mmkp_ext.models.heads.centernet_pose_head'),
    (MODELS, 'CenterNetFocalLoss',
     'mmkp_ext.models.losses.centernet_focal_loss'),
    (MODELS, 'CenterNetRegL1Loss',
     'mmkp_ext.models.losses.centernet_reg_l1_loss'),
    # SWAHR / HigherHRNet (part A)
    (MODELS, 'HigherHRNetHead', 'mmkp_ext.models.heads.higherhrnet_head'),
    (MODELS, 'SWAHRLoss', 'mmkp_ext.models.losses.swahr_loss'),
    (MODELS, 'HigherHRNetAELoss',
     'mmkp_ext.models.losses.higherhrnet_ae_loss'),
    # SWAHR / HigherHRNet (part B)
    (KEYPOINT_CODECS, 'MultiResolutionAELabel',
     'mmkp_ext.codecs.multi_resolution_ae_label'),
    (TRANSFORMS, 'BottomupIgnoreMask',
     'mmkp_ext.datasets.transforms.bottomup_ae_transforms'),
    (MODELS, 'CenterNetPoseEstimator',
     'mmkp_ext.models.pose_estimators.centernet_pose_estimator'),
    (KEYPOINT_CODECS, 'GroupedCenterNetLabel',
     'mmkp_ext.codecs.grouped_centernet_label'),
    (TRANSFORMS, 'CenterNetFilterInstances',
     'mmkp_ext.datasets.transforms.centernet_transforms'),
    (DATASETS, 'DeepFashion2FullDataset',
     'mmkp_ext.datasets.deepfashion2_full_dataset'),
    (METRICS, 'MultiCategoryCocoMetric',
     'mmkp_ext.evaluation.multi_category_coco_metric'),
    # HRNet++ (part B): ensemble and TTA estimators
    (MODELS, 'EnsemblePoseEstimator',
     'mmkp_ext.models.pose_estimators.ensemble_pose_estimator'),
    (MODELS, 'TopdownTTAPoseEstimator',
     'mmkp_ext.models.pose_estimators.topdown_tta'),
    # Soft-gated skip connections
    (MODELS, 'SoftGatedHourglass',
     'mmkp_ext.models.backbones.soft_gated_hourglass'),
]


@pytest.mark.parametrize('registry,name,module', EXPECTED)
def test_registered_in_mmpose_registry(registry, name, module):
    # In mmpose's own registry (configs inheriting mmpose:: bases carry
    # _scope_='mmpose'), not in a child registry of ours.
    assert registry.scope == 'mmpose'
    cls = registry.module_dict.get(name)
    assert cls is not None, f'{name} not registered in mmpose {registry.name}'
    assert cls.__module__ == module


def test_build_by_name_in_mmpose_scope():
    with DefaultScope.overwrite_default_scope('mmpose'):
        head = MODELS.build(
            dict(type='SoftArgmaxHead', in_channels=4, num_joints=3))
    assert type(head).__name__ == 'SoftArgmaxHead'



def test_model_wrapper_found_by_runner_lookup():
    """mmengine's Runner.wrap_model calls get() on mmengine's root registry
    (no default-scope switch); the scoped name used in our configs must
    resolve there."""
    from mmengine.registry import MODEL_WRAPPERS as ROOT
    from mmkp_ext.engine import MMKPDistributedDataParallel
    assert ROOT.get('mmpose.MMKPDistributedDataParallel') is \
        MMKPDistributedDataParallel
