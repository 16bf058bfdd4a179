"""The toy-data demos (``make demo``, ``make demo-<method>``) as declared
recipes, run by :func:`mmkp_ext.demo.runner.run_recipe` through mmpose's
stock ``train.py`` / ``test.py``.

A recipe is data: the toy dataset to generate, training stages (config,
epochs, how the schedule follows a changed epoch count, ``load_from`` = the
best or last checkpoint of an earlier stage), an optional post step
(ensemble merge, gate plot), the tests (config + which checkpoint, metric
keys) and which test is the headline result.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

__all__ = ['DataSpec', 'Stage', 'PostStep', 'TestSpec', 'Recipe', 'RECIPES']


@dataclass(frozen=True)
class DataSpec:
    """Arguments of ``tools/dataset_converters/make_toy_dataset.py``."""
    kind: str  # 'persons' or 'fashion'
    root: str
    num_images: int
    image_size: Optional[int] = None
    seed: int = 0


@dataclass(frozen=True)
class Stage:
    """One ``train.py`` run.

    ``epochs``: ``None`` trains the config as it is; a number (or the
    user's ``--epochs``) fills the ``schedule`` templates (``{epochs}``:
    ``--cfg-options`` that make the config's schedule span that many epochs;
    validation and checkpointing then happen once, at the end). ``checkpoint``:
    ``'best'`` (``best_<metric>_epoch_*.pth``) or ``'last'``
    (``epoch_<epochs>.pth``) is what later stages and tests use.
    """
    name: str
    config: str
    epochs: Optional[int]
    schedule: Tuple[str, ...] = ()
    load_from: Optional[str] = None
    checkpoint: str = 'last'
    options: Tuple[str, ...] = ()


@dataclass(frozen=True)
class PostStep:
    """A step after training: ``'merge_ensemble'`` (writes checkpoint
    ``name`` from the ``inputs`` stages' checkpoints for ``config``) or
    ``'plot_gates'`` (soft-gate histogram of stage ``inputs[0]``)."""
    kind: str
    name: str
    inputs: Tuple[str, ...]
    config: Optional[str] = None


@dataclass(frozen=True)
class TestSpec:
    """One ``test.py`` run of ``config`` with the checkpoint of stage (or
    post step) ``checkpoint``; ``metrics``: the logged keys to report."""
    name: str
    config: str
    checkpoint: str
    metrics: Tuple[str, ...] = ('coco/AP', )
    options: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipe:
    method: str
    title: str
    data: DataSpec
    stages: Tuple[Stage, ...]
    tests: Tuple[TestSpec, ...]
    headline: str  # name of the test whose first metric is the result
    post: Tuple[PostStep, ...] = ()
    # bottom-up models draw instances above this score in the pictures
    vis_score_thr: float = 0.3

    @property
    def make_target(self) -> str:
        """The Makefile target that runs this recipe."""
        if self.method == 'softargmax':
            return 'demo'
        return f'demo-{self.method}'


_EPOCHS_ONLY = ('train_cfg.max_epochs={epochs}',
                'train_cfg.val_interval={epochs}',
                'default_hooks.checkpoint.interval={epochs}')


def _cosine(index: int) -> Tuple[str, ...]:
    return _EPOCHS_ONLY + (f'param_scheduler.{index}.T_max={{epochs}}',
                           f'param_scheduler.{index}.end={{epochs}}')


_SA = 'configs/soft_argmax/toy_persons/'
_HP = 'configs/hrnetpp/toy_persons/'
_SW = 'configs/swahr/toy_persons/'
_CN = ('configs/centernet_grouping/toy_fashion/'
       'cn-pose_dla34-tiny_1xb16-80e_toy-fashion-128x128.py')
_PO = 'configs/poseur/toy_persons/poseur_res18-tiny_1xb16-40e_toy-persons-128x96.py'
_SG = ('configs/soft_gated/toy_persons/'
       'td-hm_softgated-hg2-c64_1xb16-10e_toy-persons-64x48.py')
_FASHION_KEYS = ('toy_fashion/AP', 'toy_fashion/AP .5', 'toy_fashion/AR',
                 'toy_fashion/AP_short_sleeved_top',
                 'toy_fashion/AP_trousers', 'toy_fashion/AP_skirt')

RECIPES: Dict[str, Recipe] = {
    'softargmax': Recipe(
        method='softargmax',
        title='ResNet-18 heatmap -> soft-argmax fine-tuning (make demo)',
        data=DataSpec('persons', 'data/toy_persons', 400),
        stages=(
            Stage('heatmap', _SA + 'td-hm_res18-s8_1xb16-20e_toy-persons-'
                  '128x96.py', None, _EPOCHS_ONLY, checkpoint='best'),
            Stage('soft-argmax', _SA + 'td-sa_res18-s8_1xb16-6e_toy-persons-'
                  '128x96.py', None, _EPOCHS_ONLY, load_from='heatmap',
                  checkpoint='best'),
        ),
        tests=(TestSpec('soft-argmax (flip test)', _SA +
                        'td-sa_res18-s8_1xb16-6e_toy-persons-128x96.py',
                        'soft-argmax'), ),
        headline='soft-argmax (flip test)'),
    'centernet': Recipe(
        method='centernet',
        title='grouped CenterNet (DLA-34 tiny) on toy fashion',
        data=DataSpec('fashion', 'data/toy_fashion', 300),
        stages=(Stage('train', _CN, 80, _EPOCHS_ONLY), ),
        tests=(TestSpec('rescore decoding', _CN, 'train', _FASHION_KEYS,
                        ('model.test_cfg.decode_mode=rescore', )),
               TestSpec('nearest decoding', _CN, 'train', _FASHION_KEYS,
                        ('model.test_cfg.decode_mode=nearest', ))),
        headline='rescore decoding'),
    'poseur': Recipe(
        method='poseur',
        title='tiny Poseur (ResNet-18, RLE) on toy persons',
        data=DataSpec('persons', 'data/toy_persons_poseur', 200),
        # 30 of the config's 40 epochs, the cosine schedule spanning them
        stages=(Stage('train', _PO, 30, _cosine(1)), ),
        tests=(TestSpec('Poseur', _PO, 'train', ('coco/AP', 'coco/AP .5')), ),
        headline='Poseur'),
    'hrnetpp': Recipe(
        method='hrnetpp',
        title='HRNet++ heatmap -> soft-argmax, ensemble, TTA',
        data=DataSpec('persons', 'data/toy_persons', 400),
        stages=(
            Stage('HRNet++ heatmap', _HP + 'td-hm_hrnetpp-w16-tiny_1xb16-'
                  '20e_toy-persons-128x96.py', None, _cosine(1),
                  checkpoint='best'),
            Stage('HRNet++ soft-argmax', _HP + 'td-sa_hrnetpp-w16-tiny_'
                  '1xb16-6e_toy-persons-128x96.py', None, _cosine(0),
                  load_from='HRNet++ heatmap', checkpoint='best'),
        ),
        post=(PostStep('merge_ensemble', 'ensemble',
                       ('HRNet++ heatmap', 'HRNet++ soft-argmax'),
                       _HP + 'td-ensemble-hm-sa_hrnetpp-w16-tiny_toy-persons'
                       '-128x96.py'), ),
        tests=(
            TestSpec('HRNet++ heatmap', _HP + 'td-hm_hrnetpp-w16-tiny_1xb16-'
                     '20e_toy-persons-128x96.py', 'HRNet++ heatmap'),
            TestSpec('HRNet++ regression (soft-argmax)', _HP +
                     'td-sa_hrnetpp-w16-tiny_1xb16-6e_toy-persons-128x96.py',
                     'HRNet++ soft-argmax'),
            TestSpec('HRNet++ regression + TTA', _HP + 'td-sa-tta_hrnetpp-'
                     'w16-tiny_1xb16-6e_toy-persons-128x96.py',
                     'HRNet++ soft-argmax'),
            TestSpec('HRNet++ ensemble', _HP + 'td-ensemble-hm-sa_hrnetpp-'
                     'w16-tiny_toy-persons-128x96.py', 'ensemble'),
            TestSpec('HRNet++ ensemble + TTA', _HP + 'td-ensemble-hm-sa-tta_'
                     'hrnetpp-w16-tiny_toy-persons-128x96.py', 'ensemble'),
        ),
        headline='HRNet++ ensemble + TTA'),
    'softgated': Recipe(
        method='softgated',
        title='soft-gated hourglass (2 stacks) on toy persons',
        data=DataSpec('persons', 'data/toy_persons_softgated', 200),
        stages=(Stage('train', _SG, 10, _cosine(1)), ),
        post=(PostStep('plot_gates', 'gates', ('train', )), ),
        tests=(TestSpec('soft-gated hourglass', _SG, 'train'), ),
        headline='soft-gated hourglass'),
    'swahr': Recipe(
        method='swahr',
        title='bottom-up HigherHRNet vs SWAHR on 64 px toy persons',
        data=DataSpec('persons', 'data/toy_persons_64', 400, image_size=64),
        stages=(
            Stage('HigherHRNet', _SW + 'higherhrnet_hrnet-w16-tiny_1xb16-'
                  '36e_toy-persons-64x64.py', 36, _EPOCHS_ONLY +
                  ('param_scheduler.1.end={epochs}', ),
                  options=('default_hooks.checkpoint.save_best=None', )),
            Stage('SWAHR', _SW + 'swahr_hrnet-w16-tiny_1xb16-36e_toy-'
                  'persons-64x64.py', 36, _EPOCHS_ONLY +
                  ('param_scheduler.1.end={epochs}', ),
                  options=('default_hooks.checkpoint.save_best=None', )),
        ),
        tests=(TestSpec('HigherHRNet', _SW + 'higherhrnet_hrnet-w16-tiny_'
                        '1xb16-36e_toy-persons-64x64.py', 'HigherHRNet',
                        ('coco/AP', 'coco/AR')),
               TestSpec('SWAHR', _SW + 'swahr_hrnet-w16-tiny_1xb16-36e_toy-'
                        'persons-64x64.py', 'SWAHR', ('coco/AP', 'coco/AR'))),
        headline='SWAHR',
        vis_score_thr=0.1),
}
