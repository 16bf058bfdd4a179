"""Save and restore every random number generator with the checkpoint, so
that a resumed run continues exactly as the uninterrupted one."""
import random
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmpose.registry import HOOKS

#: Key of the RNG states in a checkpoint (top level, beside ``meta``).
CHECKPOINT_KEY = 'rng_state'


def _unwrap_sampler(dataloader) -> Optional[Any]:
    sampler = getattr(dataloader, 'sampler', None)
    batch_sampler = getattr(dataloader, 'batch_sampler', None)
    if sampler is not None and hasattr(sampler, 'seed'):
        return sampler
    inner = getattr(batch_sampler, 'sampler', None)
    return inner if inner is not None and hasattr(inner, 'seed') else None


def capture_rng_state(dataloader=None) -> Dict[str, Any]:
    """The current states of python's ``random``, numpy's global
    ``np.random``, torch's CPU (and, where CUDA is available, every CUDA
    device's) generator, and of ``dataloader``'s sampler seed / epoch and
    its own ``generator`` if it has one.

    Everything is plain Python (ints, floats, tuples, lists) or a tensor,
    so a checkpoint holding it loads with ``torch.load(weights_only=True)``
    without extra allow-listed globals (numpy's key array is stored as a
    list of ints).
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = dict(
        python=random.getstate(),
        numpy=dict(kind=str(kind), keys=[int(k) for k in keys], pos=int(pos),
                   has_gauss=int(has_gauss), cached_gaussian=float(cached)),
        torch=torch.get_rng_state(),
    )
    if torch.cuda.is_available():
        state['cuda'] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    if dataloader is not None:
        sampler = _unwrap_sampler(dataloader)
        if sampler is not None:
            state['sampler'] = dict(
                type=type(sampler).__name__,
                seed=int(sampler.seed),
                epoch=int(getattr(sampler, 'epoch', 0)))
        generator = getattr(dataloader, 'generator', None)
        if generator is not None:
            state['generator'] = generator.get_state()
    return state


def restore_rng_state(state: Dict[str, Any], dataloader=None,
                      logger=None) -> None:
    """Set the generators to ``state`` (from :func:`capture_rng_state`).
    The sampler's seed is restored too (mmengine builds the train
    dataloader before it re-reads the seed from the checkpoint, so a run
    with ``randomness.seed=None`` would otherwise shuffle with a new
    seed)."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    ns = state['numpy']
    np.random.set_state((ns['kind'], np.asarray(ns['keys'], dtype=np.uint32),
                         ns['pos'], ns['has_gauss'], ns['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state:
        if torch.cuda.is_available() and \
                torch.cuda.device_count() == len(state['cuda']):
            torch.cuda.set_rng_state_all(state['cuda'])
        elif logger is not None:
            logger.warning('RNGStateHook: the checkpoint holds the states of '
                           f'{len(state["cuda"])} CUDA device(s) but '
                           f'{torch.cuda.device_count()} are visible; CUDA '
                           'generators are not restored.')
    if dataloader is not None:
        sampler = _unwrap_sampler(dataloader)
        if sampler is not None and 'sampler' in state:
            sampler.seed = state['sampler']['seed']
        generator = getattr(dataloader, 'generator', None)
        if generator is not None and 'generator' in state:
            generator.set_state(state['generator'])


class _RestoreBeforeNext:
    """Wraps the iteration-based loop's dataloader iterator: mmengine
    advances it by the resumed number of iterations (which loads and
    transforms those batches, using random numbers); just before the first
    batch after that, the saved states are restored."""

    def __init__(self, iterator, skip: int, restore):
        self._iterator = iterator
        self._skip = skip
        self._restore = restore

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip == 0 and self._restore is not None:
            self._restore()
            self._restore = None
        self._skip -= 1
        return next(self._iterator)

    def __getattr__(self, name):
        return getattr(self._iterator, name)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Exact resume: keep python / numpy / torch (CPU and CUDA) RNG states
    and the train sampler's seed in every checkpoint, and restore them when
    training resumes.

    mmengine re-seeds every generator from the seed when it resumes, so a
    resumed run draws different augmentations (and dropout masks) than the
    uninterrupted one from the resume point on. With this hook a
    deterministic run resumed from its last checkpoint reproduces the
    uninterrupted run's losses and results exactly:

    * ``before_save_checkpoint``: the states go into
      ``checkpoint['rng_state']`` (plain Python and tensors only).
    * ``after_load_checkpoint`` (only when resuming, not for ``load_from``
      fine-tuning or test.py): the states are kept, and applied at the
      point where the uninterrupted run would continue: in
      ``before_train_epoch`` of an epoch-based loop (after mmengine's
      re-seeding), and in an iteration-based loop right after mmengine has
      fast-forwarded the dataloader past the resumed iterations.
    * Validation does not consume the training streams: the states are
      captured in ``before_val`` and restored in ``after_val`` (validation
      runs between a checkpoint and the next training iteration in the
      uninterrupted run, not in the resumed one). A checkpoint saved during
      validation (best checkpoint) stores the captured training states.

    Exactness needs what any deterministic run needs (fixed
    ``randomness.seed``, deterministic ops, the same number of threads),
    data loading in the main process or in non-persistent workers
    (``persistent_workers=True`` keeps worker RNG states that no checkpoint
    can hold: a warning is logged), and, in an epoch-based loop,
    checkpoints at epoch ends (mmengine restarts a partly trained epoch
    from its first batch).

    Add it with ``custom_hooks = [dict(type='RNGStateHook')]``.
    """

    priority = 'LOWEST'

    def __init__(self) -> None:
        self._pending: Optional[Dict[str, Any]] = None
        self._train_state: Optional[Dict[str, Any]] = None
        self._in_val = False

    @staticmethod
    def _train_dataloader(runner):
        loop = getattr(runner, '_train_loop', None)
        if loop is None or isinstance(loop, dict):
            return None
        return getattr(loop, 'dataloader', None)

    def before_train(self, runner) -> None:
        dataloader = self._train_dataloader(runner)
        if dataloader is not None and getattr(
                dataloader, 'persistent_workers', False) and getattr(
                    dataloader, 'num_workers', 0) > 0:
            runner.logger.warning(
                'RNGStateHook: the train dataloader keeps persistent '
                'workers, whose random states cannot be saved; a resumed '
                'run then draws other augmentations than the uninterrupted '
                'one. Set train_dataloader.persistent_workers=False (or '
                'num_workers=0) for exact resume.')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._in_val and self._train_state is not None:
            state = self._train_state
        else:
            state = capture_rng_state(self._train_dataloader(runner))
        checkpoint[CHECKPOINT_KEY] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from (fine-tuning) or testing: keep the seeds
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:
            runner.logger.warning(
                'RNGStateHook: the checkpoint holds no RNG states (saved '
                'without this hook); training resumes with mmengine\'s '
                're-seeded generators and will not repeat the interrupted '
                'run exactly.')
            return
        self._pending = state
        meta = checkpoint.get('meta', {})
        loop = getattr(runner, '_train_loop', None)
        per_epoch = None
        try:
            per_epoch = len(loop.dataloader)
        except Exception:  # noqa: BLE001 - unknown loop / dataloader
            pass
        if (loop is not None and not hasattr(loop, 'dataloader_iterator')
                and per_epoch and 'iter' in meta and 'epoch' in meta
                and meta['iter'] != meta['epoch'] * per_epoch):
            runner.logger.warning(
                'RNGStateHook: resuming an epoch-based loop from a '
                f'mid-epoch checkpoint (iter {meta["iter"]}, epoch '
                f'{meta["epoch"]}); mmengine restarts that epoch from its '
                'first batch, so the resumed run is not exact.')

    def before_train_epoch(self, runner) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        loop = runner.train_loop
        dataloader = self._train_dataloader(runner)

        def restore():
            restore_rng_state(state, dataloader, runner.logger)
            runner.logger.info('RNGStateHook: restored the random states '
                               'saved with the resumed checkpoint.')

        iterator = getattr(loop, 'dataloader_iterator', None)
        if iterator is not None and getattr(loop, '_iter', 0) > 0:
            # Iteration-based loop: mmengine now calls next() loop.iter
            # times to skip the trained batches. The sampler's seed must be
            # right before that, the generators only afterwards.
            sampler = _unwrap_sampler(dataloader)
            if sampler is not None and 'sampler' in state:
                sampler.seed = state['sampler']['seed']
            loop.dataloader_iterator = _RestoreBeforeNext(
                iterator, loop._iter, restore)
        else:
            restore()

    def before_val(self, runner) -> None:
        self._train_state = capture_rng_state(self._train_dataloader(runner))
        self._in_val = True

    def after_val(self, runner) -> None:
        if self._train_state is not None:
            restore_rng_state(self._train_state,
                              self._train_dataloader(runner))
        self._train_state = None
        self._in_val = False
