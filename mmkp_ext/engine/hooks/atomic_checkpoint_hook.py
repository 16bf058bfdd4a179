"""A checkpoint hook whose files are never half written, and a ``--resume``
that finds the newest checkpoint that loads."""
import os
import os.path as osp
import re
import zipfile
from typing import List, Optional, Tuple

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmpose.registry import HOOKS

#: Suffix of the temporary files (hidden: ``.epoch_3.pth.tmp``) that a save
#: writes before renaming them into place.
TMP_SUFFIX = '.tmp'


def fsync_dir(path: str) -> None:
    """Flush the directory entry ``path`` (a rename into it) to disk, where
    the OS supports opening directories (POSIX)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_atomically(tmp_path: str, final_path: str) -> None:
    """fsync ``tmp_path``, rename it to ``final_path`` (``os.replace``:
    atomic within one filesystem) and fsync the directory, so that after a
    crash ``final_path`` is either the old file or the complete new one."""
    with open(tmp_path, 'rb') as f:
        os.fsync(f.fileno())
    os.replace(tmp_path, final_path)
    fsync_dir(osp.dirname(osp.abspath(final_path)))


def write_text_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same
    directory and :func:`replace_atomically`."""
    tmp = osp.join(osp.dirname(path), '.' + osp.basename(path) + TMP_SUFFIX)
    with open(tmp, 'w') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    replace_atomically(tmp, path)


def checkpoint_looks_complete(path: str) -> Tuple[bool, str]:
    """Whether ``path`` is a complete checkpoint file, without unpickling
    it: a non-empty file whose zip archive (``torch.save``'s format) has its
    central directory and passes every member's CRC check. Files in torch's
    legacy (non-zip) format are loaded with the safe loader instead.

    Returns:
        ``(ok, reason)``; ``reason`` says what is wrong when ``ok`` is
        false.
    """
    if not osp.isfile(path):
        return False, 'does not exist'
    if osp.getsize(path) == 0:
        return False, 'is empty (0 bytes)'
    if not zipfile.is_zipfile(path):
        with open(path, 'rb') as f:
            if f.read(4) == b'PK\x03\x04':
                return False, ('is truncated (a zip archive without its '
                               'central directory)')
        from mmkp_ext.safe_load import load_checkpoint_dict
        try:
            load_checkpoint_dict(path)
        except Exception as e:  # noqa: BLE001 - any failure: not usable
            return False, f'does not load ({type(e).__name__}: {e})'
        return True, ''
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        return False, f'is truncated or corrupt ({e})'
    if bad is not None:
        return False, f'is corrupt (CRC error in {bad})'
    if not any(n.endswith('data.pkl') for n in names):
        return False, 'is not a torch.save archive (no data.pkl)'
    return True, ''


def _template_regex(filename_tmpl: str) -> re.Pattern:
    """``'epoch_{}.pth'`` -> a regex matching ``epoch_12.pth`` with the
    number as group 1."""
    parts = filename_tmpl.split('{}')
    if len(parts) != 2:
        raise ValueError(f'filename_tmpl {filename_tmpl!r} must contain '
                         'exactly one "{}"')
    return re.compile('^' + re.escape(parts[0]) + r'(\d+)' +
                      re.escape(parts[1]) + '$')


def find_resume_checkpoint(work_dir: str,
                           ckpt_dirs: List[str],
                           filename_tmpl: str = 'epoch_{}.pth',
                           logger=None) -> Optional[str]:
    """The checkpoint that ``--resume`` (auto resume) should take.

    ``work_dir/last_checkpoint`` names it when that file exists, is not
    empty and names a complete checkpoint (:func:`checkpoint_looks_complete`).
    Otherwise the newest complete checkpoint named by ``filename_tmpl``
    (highest number) in ``ckpt_dirs`` is taken, and ``logger`` (if given) is
    told why and which one.

    Returns:
        the path, or ``None`` when no complete checkpoint exists.
    """

    def log(msg, level='warning'):
        if logger is not None:
            getattr(logger, level)(msg)

    last_file = osp.join(work_dir, 'last_checkpoint')
    problem = None
    last = None
    if not osp.isfile(last_file):
        problem = f'{last_file} does not exist'
    else:
        with open(last_file) as f:
            last = f.read().strip()
        if not last:
            problem = f'{last_file} is empty'
        else:
            ok, reason = checkpoint_looks_complete(last)
            if ok:
                return last
            problem = f'{last_file} names {last}, which {reason}'
    pattern = _template_regex(filename_tmpl)
    candidates = {}
    for d in ckpt_dirs:
        if not osp.isdir(d):
            continue
        for name in os.listdir(d):
            m = pattern.match(name)
            if m:
                path = osp.join(d, name)
                candidates[osp.abspath(path)] = (int(m.group(1)),
                                                 osp.getmtime(path), path)
    skipped = []
    for step, _, path in sorted(candidates.values(), reverse=True):
        if last and osp.abspath(path) == osp.abspath(last):
            continue
        ok, reason = checkpoint_looks_complete(path)
        if ok:
            log(f'auto resume: {problem}; resuming from {path}, the newest '
                'complete checkpoint' +
                (f' (skipped {", ".join(skipped)})' if skipped else '') + '.')
            return path
        skipped.append(f'{osp.basename(path)}: {reason}')
    if last is not None or skipped:
        log(f'auto resume: {problem}, and no other complete checkpoint '
            f'matching {filename_tmpl!r} is in {ckpt_dirs}' +
            (f' (skipped {", ".join(skipped)})' if skipped else '') +
            ': training starts from scratch.')
    return None


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) whose saves survive a
    kill at any moment.

    * Each checkpoint (periodic, last and best) is written to a hidden
      temporary file in the same directory (``.epoch_3.pth.tmp``), fsynced
      and renamed into place with ``os.replace``; a kill leaves either the
      old state or the new file, never a partial ``epoch_N.pth``.
    * ``last_checkpoint`` is replaced the same way, after the checkpoint is
      complete.
    * Old checkpoints (``max_keep_ckpts``) and the previous best checkpoint
      are deleted only after the new one is complete (stock mmengine
      deletes first, so a kill during the save of the only kept checkpoint
      left none).
    * Auto resume (``resume=True`` without a path, ``train.py --resume``):
      if ``last_checkpoint`` is missing, empty or names a missing or
      truncated file, the newest complete checkpoint of this hook's
      ``filename_tmpl`` in the checkpoint directory is resumed instead
      (logged); with none at all, training starts from scratch with a
      warning (stock mmengine fails with FileNotFoundError). This happens in
      ``before_run``, which mmengine calls before ``load_or_resume``: the
      chosen file is handed to the Runner as the checkpoint to resume
      from, so configs that do not use this hook are unaffected.
    * Temporary files left by a killed save are removed in
      ``before_train``.

    Only local checkpoint directories can be renamed atomically; with
    another storage backend (``backend_args``) the hook behaves exactly as
    ``CheckpointHook`` and logs a warning once.
    """

    # ----------------------------------------------------------- resume
    def _checkpoint_dir(self, runner) -> str:
        """The directory ``before_train`` will save to (computed without
        changing ``self.out_dir``)."""
        out_dir = self.out_dir if self.out_dir is not None else \
            runner.work_dir
        out_dir = str(out_dir)
        if out_dir != runner.work_dir:
            out_dir = osp.join(out_dir,
                               osp.basename(runner.work_dir.rstrip(osp.sep)))
        return out_dir

    def before_run(self, runner) -> None:
        super().before_run(runner)
        if not (getattr(runner, '_resume', False)
                and getattr(runner, '_load_from', None) is None):
            return
        if self.backend_args is not None or self.file_client_args is not None:
            return  # not a local directory: stock behaviour
        ckpt_dir = self._checkpoint_dir(runner)
        dirs = [ckpt_dir] + ([runner.work_dir]
                             if ckpt_dir != runner.work_dir else [])
        path = find_resume_checkpoint(runner.work_dir, dirs,
                                      self.filename_tmpl, runner.logger)
        if path is None:
            # Nothing to resume: make load_or_resume skip the stale
            # last_checkpoint instead of failing on it.
            runner._resume = False
            return
        runner.logger.info(f'auto resume: resuming from {path}')
        # load_or_resume then resumes from this file ("resume from the
        # specified checkpoint").
        runner._load_from = path

    # ------------------------------------------------------------ saving
    def _is_local(self) -> bool:
        local = isinstance(getattr(self, 'file_backend', None), LocalBackend)
        if not local and not getattr(self, '_warned_backend', False):
            self._warned_backend = True
            from mmengine.logging import print_log
            print_log(
                'AtomicCheckpointHook: checkpoints go to a non-local '
                f'backend ({type(self.file_backend).__name__}); they are '
                'saved as by CheckpointHook, without atomic renames.',
                logger='current', level=30)
        return local

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if not (self._is_local() and is_main_process()):
            return
        # Temporary files of a save that was killed.
        for d in {str(self.out_dir), runner.work_dir}:
            if not osp.isdir(d):
                continue
            for name in os.listdir(d):
                if name.startswith('.') and name.endswith(TMP_SUFFIX):
                    os.remove(osp.join(d, name))
                    runner.logger.info('removed the partial file of an '
                                       f'interrupted save: {name}')

    def _save_atomically(self, runner, filename: str, **kwargs) -> str:
        """``runner.save_checkpoint`` into ``.<filename>.tmp``, then rename
        it to ``filename`` (main process only). Returns the final path."""
        final = osp.join(str(self.out_dir), filename)
        tmp_name = '.' + filename + TMP_SUFFIX
        runner.save_checkpoint(
            str(self.out_dir),
            tmp_name,
            self.file_client_args,
            backend_args=self.backend_args,
            **kwargs)
        if is_main_process():
            replace_atomically(osp.join(str(self.out_dir), tmp_name), final)
        return final

    def _publish_model(self, runner, ckpt_path: str) -> None:
        """CheckpointHook's publishing (``published_keys``): the checkpoint
        is read with mmkp_ext's safe loader and the published file is
        written atomically."""
        if not self._is_local():
            return super()._publish_model(runner, ckpt_path)
        if not is_main_process():
            return
        import hashlib
        import pickle

        import torch

        from mmkp_ext.safe_load import load_checkpoint_dict
        checkpoint = dict(load_checkpoint_dict(ckpt_path))
        removed = [k for k in checkpoint if k not in self.published_keys]
        for key in removed:
            checkpoint.pop(key)
        if removed:
            runner.logger.info(
                f'Key {removed} will be removed because they are not found '
                'in published_keys. If you want to keep them, please set '
                f'`{removed}` in published_keys')
        sha = hashlib.sha256(pickle.dumps(checkpoint)).hexdigest()
        final_path = osp.splitext(ckpt_path)[0] + f'-{sha[:8]}.pth'
        tmp = osp.join(osp.dirname(final_path),
                       '.' + osp.basename(final_path) + TMP_SUFFIX)
        torch.save(checkpoint, tmp)
        replace_atomically(tmp, final_path)
        runner.logger.info(f'The checkpoint ({ckpt_path}) is published to '
                           f'{final_path}.')

    def _remove_checkpoint(self, path: str) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):
            self.file_backend.rmtree(path)

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not self._is_local():
            return super()._save_checkpoint_with_step(runner, step, meta)
        # The same bookkeeping as CheckpointHook (the saved message hub
        # already lists the new id), but the outdated file is removed only
        # after the new one is complete.
        outdated = []
        if self.max_keep_ckpts > 0:
            if not (len(self.keep_ckpt_ids) > 0
                    and self.keep_ckpt_ids[-1] == step):
                if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                    outdated.append(self.keep_ckpt_ids.popleft())
                self.keep_ckpt_ids.append(step)
                runner.message_hub.update_info('keep_ckpt_ids',
                                               list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        self._save_atomically(
            runner,
            ckpt_filename,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            **self.args)
        if not is_main_process():
            return
        write_text_atomically(osp.join(runner.work_dir, 'last_checkpoint'),
                              str(self.last_ckpt))
        for old in outdated:
            if old != step:
                self._remove_checkpoint(
                    self.file_backend.join_path(
                        self.out_dir, self.filename_tmpl.format(old)))

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """CheckpointHook's best-checkpoint logic, with the new best saved
        atomically before the previous best is removed."""
        if not self.save_best:
            return
        if not self._is_local():
            return super()._save_best_checkpoint(runner, metrics)
        if self.by_epoch:
            ckpt_filename = self.filename_tmpl.format(runner.epoch)
            cur_type, cur_time = 'epoch', runner.epoch
        else:
            ckpt_filename = self.filename_tmpl.format(runner.iter)
            cur_type, cur_time = 'iter', runner.iter
        meta = dict(epoch=runner.epoch, iter=runner.iter)
        if 'auto' in self.key_indicators:
            self._init_rule(self.rules, [list(metrics.keys())[0]])

        best_ckpt_updated = False
        single = len(self.key_indicators) == 1
        for key_indicator, rule in zip(self.key_indicators, self.rules):
            key_score = metrics[key_indicator]
            if single:
                best_score_key, runtime_key = 'best_score', 'best_ckpt'
                previous = self.best_ckpt_path
            else:
                best_score_key = f'best_score_{key_indicator}'
                runtime_key = f'best_ckpt_{key_indicator}'
                previous = self.best_ckpt_path_dict[key_indicator]
            best_score = runner.message_hub.runtime_info.get(
                best_score_key, self.init_value_map[rule])
            if key_score is None or not self.is_better_than[key_indicator](
                    key_score, best_score):
                continue
            best_name = f'best_{key_indicator}_{ckpt_filename}'.replace(
                '/', '_')
            new_path = self.file_backend.join_path(self.out_dir, best_name)
            # The saved message hub records the new best (as with
            # CheckpointHook); the hook's own record changes only once the
            # file is complete.
            info = runner.message_hub.runtime_info
            saved_info = {k: info[k] for k in (best_score_key, runtime_key)
                          if k in info}
            runner.message_hub.update_info(best_score_key, key_score)
            runner.message_hub.update_info(runtime_key, new_path)
            try:
                self._save_atomically(
                    runner,
                    best_name,
                    save_optimizer=False,
                    save_param_scheduler=False,
                    meta=dict(meta),
                    by_epoch=False)
            except BaseException:
                for k in (best_score_key, runtime_key):
                    info.pop(k, None)
                for k, v in saved_info.items():
                    runner.message_hub.update_info(k, v)
                raise
            best_ckpt_updated = True
            if single:
                self.best_ckpt_path = new_path
            else:
                self.best_ckpt_path_dict[key_indicator] = new_path
            if previous and previous != new_path and is_main_process():
                if self.file_backend.exists(previous):
                    self._remove_checkpoint(previous)
                    runner.logger.info(
                        f'The previous best checkpoint {previous} is removed')
            runner.logger.info(
                f'The best checkpoint with {key_score:0.4f} {key_indicator} '
                f'at {cur_time} {cur_type} is saved to {best_name}.')
        # As CheckpointHook: save the last checkpoint again so that its
        # message hub records the new best.
        if best_ckpt_updated and self.last_ckpt is not None:
            self._save_checkpoint_with_step(runner, cur_time, meta)
