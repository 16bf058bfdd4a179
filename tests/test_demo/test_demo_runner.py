"""The demo recipes and their runner, with a fake command runner that
records the commands and writes the files a real run would leave."""
import os
import os.path as osp

import pytest
from _helpers import REPO_ROOT, run_python

from mmkp_ext.demo import (RECIPES, DemoError, plan, run_recipe,
                           stage_options, summary)


@pytest.mark.parametrize('method', sorted(RECIPES))
def test_recipes_are_consistent(method):
    r = RECIPES[method]
    names = [s.name for s in r.stages] + [p.name for p in r.post]
    assert len(set(names)) == len(names)
    seen = set()
    for s in r.stages:
        assert osp.isfile(osp.join(REPO_ROOT, s.config)), s.config
        assert s.load_from is None or s.load_from in seen
        assert s.checkpoint in ('best', 'last')
        seen.add(s.name)
    for p in r.post:
        assert set(p.inputs) <= seen
        seen.add(p.name)
    for t in r.tests:
        assert osp.isfile(osp.join(REPO_ROOT, t.config)), t.config
        assert t.checkpoint in seen
    assert r.headline in [t.name for t in r.tests]


def test_stage_options_follow_epochs():
    stage = RECIPES['hrnetpp'].stages[0]
    assert stage_options(stage, None) == []  # the config as it is
    opts = stage_options(stage, 3)
    assert 'train_cfg.max_epochs=3' in opts
    assert 'param_scheduler.1.T_max=3' in opts
    poseur = RECIPES['poseur'].stages[0]  # 30 of the config's 40 epochs
    assert 'param_scheduler.1.T_max=30' in stage_options(poseur, None)
    with pytest.raises(DemoError, match='>= 1'):
        stage_options(stage, 0)


class FakeRunner:
    """Records commands; writes the checkpoints / test logs a real run
    would, relative to the repository root ``repo``."""

    def __init__(self, repo, ap=0.5):
        self.repo, self.ap, self.calls = repo, ap, []

    def __call__(self, cmd, cwd):
        assert cwd == self.repo
        self.calls.append(cmd[1:])
        tool = cmd[1]
        if tool == 'tools/train.py':
            work = osp.join(self.repo, cmd[cmd.index('--work-dir') + 1])
            os.makedirs(work, exist_ok=True)
            opts = cmd[cmd.index('--cfg-options') + 1:]
            epochs = [o.split('=')[1] for o in opts
                      if o.startswith('train_cfg.max_epochs=')]
            n = epochs[0] if epochs else '7'
            for name in (f'epoch_{n}.pth', f'best_coco_AP_epoch_{n}.pth'):
                open(osp.join(work, name), 'w').close()
            return 'Epoch(train) done'
        if tool == 'tools/test.py':
            self.ap += 0.01
            return ('Epoch(test) [5/5] coco/AP: %.4f  coco/AP .5: 0.9  '
                    'coco/AR: 0.6  toy_fashion/AP: 0.3  toy_fashion/AP .5: '
                    '0.4  toy_fashion/AR: 0.5  toy_fashion/AP_short_sleeved_'
                    'top: 0.1  toy_fashion/AP_trousers: 0.2  toy_fashion/AP_'
                    'skirt: 0.3' % self.ap)
        if tool == 'tools/dataset_converters/make_toy_dataset.py':
            out = osp.join(self.repo, cmd[cmd.index('--out') + 1])
            os.makedirs(osp.join(out, 'images', 'val'), exist_ok=True)
            for i in range(6):
                open(osp.join(out, 'images', 'val', f'{i}.png'), 'w').close()
        return 'ok\nlast line'


def _run(method, tmp_path, **kw):
    fake = FakeRunner(str(tmp_path))
    logs = []
    res = run_recipe(RECIPES[method], str(tmp_path), runner=fake,
                     python='PY', log=logs.append, **kw)
    return fake, res, logs


def test_hrnetpp_chains_checkpoints_and_reports_the_headline(tmp_path):
    fake, res, logs = _run('hrnetpp', tmp_path, epochs=2)
    tools = [c[0] for c in fake.calls]
    assert tools == ['tools/dataset_converters/make_toy_dataset.py', 'tools/train.py',
                     'tools/train.py', 'tools/model_converters/merge_ensemble_checkpoint.py'
                     ] + ['tools/test.py'] * 5 + ['tools/demo/image_demo.py']
    hm_best = res['checkpoints']['HRNet++ heatmap']
    assert hm_best.endswith('hrnet_heatmap/best_coco_AP_epoch_2.pth')
    assert f'load_from={hm_best}' in fake.calls[2]
    merge = fake.calls[3]
    assert merge[-2:] == [hm_best, res['checkpoints']['HRNet++ soft-argmax']]
    # the ensemble tests use the merged checkpoint
    assert fake.calls[7][2] == res['checkpoints']['ensemble']
    assert logs[0].strip() == '==== stage 1 of 10: data ===='
    name, metric, value = res['headline']
    assert (name, metric) == ('HRNet++ ensemble + TTA', 'coco/AP')
    assert value == pytest.approx(0.55)  # the fifth test's fake AP
    text = summary(RECIPES['hrnetpp'], res)
    assert text.splitlines()[1].startswith('==== make demo-hrnetpp summary')
    assert RECIPES['softargmax'].make_target == 'demo'
    assert text.splitlines()[-1] == 'coco/AP (HRNet++ ensemble + TTA): 0.5500'
    assert 'pictures:' in text and '| HRNet++ heatmap' in text


def test_default_epochs_and_last_checkpoint(tmp_path):
    fake, res, _ = _run('centernet', tmp_path)
    train = fake.calls[1]
    assert 'train_cfg.max_epochs=80' in train
    assert res['checkpoints']['train'].endswith('train/epoch_80.pth')
    rescore, nearest = fake.calls[2], fake.calls[3]
    assert 'model.test_cfg.decode_mode=rescore' in rescore
    assert 'model.test_cfg.decode_mode=nearest' in nearest
    assert res['results']['nearest decoding']['toy_fashion/AP'] == 0.3
    # pictures of 4 val images with the bottom-up score threshold
    demo = fake.calls[-1]
    assert demo[demo.index('--score-thr') + 1] == '0.3'
    assert len(os.listdir(tmp_path / 'work_dirs/demo_centernet/'
                          'picture_inputs')) == 4


def test_config_epochs_use_the_newest_checkpoint(tmp_path):
    fake, res, _ = _run('softargmax', tmp_path)
    assert not any(o.startswith('train_cfg.max_epochs')
                   for o in fake.calls[1])  # the config as it is
    assert res['checkpoints']['soft-argmax'].endswith(
        'best_coco_AP_epoch_7.pth')


def test_a_failing_step_is_named(tmp_path):
    def failing(cmd, cwd):
        if cmd[1] == 'tools/train.py':
            raise RuntimeError('exit status 1: CUDA out of memory')
        return FakeRunner(str(tmp_path))(cmd, cwd)

    with pytest.raises(DemoError, match='train train failed: exit status 1'):
        run_recipe(RECIPES['poseur'], str(tmp_path), runner=failing,
                   log=lambda s: None)


def test_cli_dry_run_and_help():
    out = run_python(['tools/demo/run_demo.py', 'hrnetpp', '--dry-run',
                      '--epochs', '1']).stdout
    assert out.splitlines() == plan(RECIPES['hrnetpp'], 1)
    help_text = run_python(['tools/demo/run_demo.py', '--help']).stdout
    assert 'Examples:' in help_text and 'swahr' in help_text
