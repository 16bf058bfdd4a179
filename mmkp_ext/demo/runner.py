"""Runs a demo :class:`~mmkp_ext.demo.recipes.Recipe`: toy data -> stock
``train.py`` stages -> post step -> stock ``test.py`` runs -> a few drawn
predictions -> a summary table. Every step is a subprocess of the
repository's tools, so the demo exercises exactly what users run."""
import glob
import os
import os.path as osp
import re
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

from mmkp_ext.utils import parse_metric, run_streaming, toy_data_options

from .recipes import Recipe, Stage

__all__ = ['DemoError', 'stage_options', 'plan', 'run_recipe', 'summary']


class DemoError(RuntimeError):
    """A demo step failed; the message says which and why."""


def stage_options(stage: Stage, epochs: Optional[int]) -> List[str]:
    """``--cfg-options`` of a stage: its fixed options, plus its schedule
    templates filled with ``epochs`` (the user's), else with the stage's
    own epoch count; none when both are ``None`` (the config as it is)."""
    opts = list(stage.options)
    if epochs is None:
        epochs = stage.epochs
    if epochs is not None:
        if epochs < 1:
            raise DemoError(f'epochs must be >= 1, got {epochs}')
        opts += [t.format(epochs=epochs) for t in stage.schedule]
    return opts


def _checkpoint(work_dir: str, stage: Stage, epochs: Optional[int]) -> str:
    """The checkpoint of a finished stage: the newest ``best_*`` one, or
    ``epoch_<epochs>.pth`` (the highest ``epoch_*.pth`` when the config's
    own epoch count was used)."""
    if stage.checkpoint == 'best':
        found = glob.glob(osp.join(work_dir, 'best_*_epoch_*.pth'))
        if not found:
            raise DemoError(f'stage {stage.name!r}: no best_* checkpoint in '
                            f'{work_dir}')
        return max(found, key=osp.getmtime)
    if epochs is None:
        found = glob.glob(osp.join(work_dir, 'epoch_*.pth'))
        numbers = [int(osp.basename(f)[6:-4]) for f in found
                   if osp.basename(f)[6:-4].isdigit()]
        if not numbers:
            raise DemoError(f'stage {stage.name!r}: no epoch_*.pth in '
                            f'{work_dir}')
        epochs = max(numbers)
    path = osp.join(work_dir, f'epoch_{epochs}.pth')
    if not osp.isfile(path):
        raise DemoError(f'stage {stage.name!r}: {path} was not written')
    return path


def _slug(name: str) -> str:
    """Folder name of a step: lower case, runs of other characters -> _."""
    return re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_')


def plan(recipe: Recipe, epochs: Optional[int] = None) -> List[str]:
    """The steps the recipe will run, one line each (``--dry-run``)."""
    lines = [f'data: make_toy_dataset --kind {recipe.data.kind} '
             f'({recipe.data.num_images} images)']
    for s in recipe.stages:
        ep = s.epochs if epochs is None else epochs
        src = f', load_from={s.load_from} ({s.checkpoint} checkpoint)' \
            if s.load_from else ''
        ep_text = f'{ep} epochs' if ep else "the config's epochs"
        lines.append(f'train {s.name}: {s.config}, {ep_text}{src}')
    for p in recipe.post:
        lines.append(f'{p.kind} {p.name}: from {", ".join(p.inputs)}')
    for t in recipe.tests:
        lines.append(f'test {t.name}: {t.config} with {t.checkpoint}')
    lines.append('pictures: tools/demo/image_demo.py on 4 val images')
    return lines


def run_recipe(recipe: Recipe,
               repo: str,
               work_dir: Optional[str] = None,
               data_root: Optional[str] = None,
               num_images: Optional[int] = None,
               epochs: Optional[int] = None,
               runner: Callable[[List[str], str], str] = run_streaming,
               python: str = sys.executable,
               log: Callable[[str], None] = print) -> Dict:
    """Run every step of ``recipe`` from the repository root ``repo``.

    Args:
        work_dir / data_root / num_images: override the recipe's defaults
            (``work_dirs/demo_<method>``, the recipe's data).
        epochs: train every stage this many epochs (schedule adapted).
        runner: runs one command list in ``repo`` and returns its output
            (raises ``RuntimeError`` on failure).

    Returns:
        dict with ``results`` ({test name: {metric: value}}),
        ``checkpoints`` ({stage/post name: path}), ``times`` ({step: s}),
        ``vis_dir`` and ``headline`` (metric name, value).
    """
    work_dir = work_dir or f'work_dirs/demo_{recipe.method}'
    data = recipe.data
    root = (data_root or data.root).rstrip('/') + '/'
    n_images = num_images or data.num_images
    data_opts = toy_data_options(root)
    total = (1 + len(recipe.stages) + len(recipe.post) + len(recipe.tests) +
             1)
    step = [0]
    times: Dict[str, float] = {}

    def run(name: str, cmd: Sequence[str]) -> str:
        step[0] += 1
        log(f'\n==== stage {step[0]} of {total}: {name} ====')
        t0 = time.time()
        try:
            out = runner([python, *cmd], repo)
        except RuntimeError as err:
            raise DemoError(f'{name} failed: {err}') from err
        times[name] = time.time() - t0
        return out

    cmd = ['tools/dataset_converters/make_toy_dataset.py', '--kind', data.kind, '--out', root,
           '--num-images', str(n_images), '--seed', str(data.seed)]
    if data.image_size:
        cmd += ['--image-size', str(data.image_size)]
    run('data', cmd)

    ckpts: Dict[str, str] = {}
    for s in recipe.stages:
        ep = s.epochs if epochs is None else epochs
        sdir = osp.join(work_dir, _slug(s.name))
        opts = stage_options(s, epochs) + data_opts
        if s.load_from:
            opts.append(f'load_from={ckpts[s.load_from]}')
        run(f'train {s.name}', ['tools/train.py', s.config, '--work-dir',
                                sdir, '--cfg-options', *opts])
        ckpts[s.name] = _checkpoint(osp.join(repo, sdir), s, ep)

    post_lines = []
    for p in recipe.post:
        if p.kind == 'merge_ensemble':
            out_path = osp.join(work_dir, f'{_slug(p.name)}.pth')
            run(f'merge {p.name}', [
                'tools/model_converters/merge_ensemble_checkpoint.py', p.config, out_path,
                '--checkpoints', *[ckpts[i] for i in p.inputs]
            ])
            ckpts[p.name] = out_path
            post_lines.append(f'ensemble checkpoint: {out_path}')
        elif p.kind == 'plot_gates':
            png = osp.join(work_dir, 'soft_gates.png')
            out = run(f'plot {p.name}', ['tools/analysis_tools/plot_soft_gates.py',
                                         ckpts[p.inputs[0]], '--out', png])
            last = out.strip().splitlines()[-1] if out.strip() else ''
            post_lines.append(f'gates: {png} ({last})')
        else:
            raise DemoError(f'unknown post step kind {p.kind!r}')

    results: Dict[str, Dict[str, float]] = {}
    for t in recipe.tests:
        out = run(f'test {t.name}', [
            'tools/test.py', t.config, ckpts[t.checkpoint], '--work-dir',
            osp.join(work_dir, 'test', _slug(t.name)), '--cfg-options',
            *t.options, *data_opts
        ])
        try:
            results[t.name] = {m: parse_metric(out, m) for m in t.metrics}
        except ValueError as err:
            raise DemoError(f'test {t.name}: {err}') from err

    head = next(t for t in recipe.tests if t.name == recipe.headline)
    vis_dir = osp.join(work_dir, 'pictures')
    val_dir = osp.join(root, 'images', 'val')
    pictures = sorted(glob.glob(osp.join(repo, val_dir, '*')))[:4]
    if pictures:
        sample_dir = osp.join(work_dir, 'picture_inputs')
        os.makedirs(osp.join(repo, sample_dir), exist_ok=True)
        for p in pictures:
            dst = osp.join(repo, sample_dir, osp.basename(p))
            if not osp.exists(dst):
                os.symlink(osp.abspath(p), dst)
        run('pictures', ['tools/demo/image_demo.py', head.config,
                         ckpts[head.checkpoint], sample_dir, '--out-dir',
                         vis_dir, '--score-thr', str(recipe.vis_score_thr)])
    metric = head.metrics[0]
    return dict(results=results, checkpoints=ckpts, times=times,
                vis_dir=osp.join(vis_dir, 'vis'), post=post_lines,
                work_dir=work_dir, data_root=root, num_images=n_images,
                headline=(recipe.headline, metric,
                          results[recipe.headline][metric]))


def summary(recipe: Recipe, res: Dict) -> str:
    """The closing table of a demo: one row per test (metrics, checkpoint),
    then data, pictures, logs, times and the headline metric."""
    lines = [f'\n==== make {recipe.make_target} summary: {recipe.title} ====']
    keys: List[str] = []
    for t in recipe.tests:
        keys += [m for m in t.metrics if m not in keys]
    tests = {t.name: t for t in recipe.tests}
    width = max(len(n) for n in res['results'])
    head = f'| {"test":<{width}} | ' + ' | '.join(keys) + ' | checkpoint |'
    lines += [head, '|' + '---|' * (len(keys) + 2)]
    for name, vals in res['results'].items():
        cells = [f'{vals[k]:.4f}' if k in vals else '' for k in keys]
        ck = res['checkpoints'][tests[name].checkpoint]
        lines.append(f'| {name:<{width}} | ' + ' | '.join(cells) +
                     f' | {ck} |')
    lines.append(f'data:     {res["num_images"]} toy images in '
                 f'{res["data_root"]}')
    lines += res['post']
    lines.append(f'pictures: {res["vis_dir"]} (drawn by '
                 'tools/demo/image_demo.py)')
    lines.append(f'logs:     {res["work_dir"]}/<stage>/<timestamp>/')
    lines.append('time:     ' + ', '.join(
        f'{k} {v:.0f} s' for k, v in res['times'].items()) +
                 f' (total {sum(res["times"].values()):.0f} s)')
    name, metric, value = res['headline']
    lines.append(f'{metric} ({name}): {value:.4f}')
    return '\n'.join(lines)
