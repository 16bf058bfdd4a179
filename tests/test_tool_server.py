"""The suite's fork server (tests/_tool_server.py) reports what a real
subprocess would: exit codes, uncaught exceptions, deaths by signal, the
run's argv / cwd / environment / PYTHONPATH, merged output, timeouts.
Otherwise a failing tool run could pass as a success."""
import os
import subprocess
import sys
import textwrap

import pytest
from _helpers import REPO_ROOT, _forkable, _tool_server, run_python

SCRIPT = '''
import json, os, sys
mode = sys.argv[1]
print('out', json.dumps(dict(argv=sys.argv, cwd=os.getcwd(),
      flag=os.environ.get('MMKP_PROBE'), path0=sys.path[0])), flush=True)
print('err', file=sys.stderr, flush=True)
if mode == 'exit3':
    sys.exit(3)
if mode == 'raise':
    raise ValueError('boom')
if mode == 'kill':
    os.kill(os.getpid(), 9)
if mode == 'sleep':
    import time; time.sleep(60)
if mode == 'import':
    import probe_mod; print('probe', probe_mod.VALUE)
'''


@pytest.fixture(scope='module')
def server():
    """The worker's own server (the one run_python uses): these tests run
    what a tool run does, and starting a second one costs ~4 s."""
    return _tool_server()


def _run(server, tmp_path, mode, env=None, timeout=60, source=SCRIPT):
    """Run ``source`` as ``probe.py MODE`` in a forked child; return its
    exit code and merged output."""
    script = tmp_path / 'probe.py'
    script.write_text(textwrap.dedent(source))
    out = tmp_path / 'out.log'
    full_env = dict(os.environ, MMKP_PROBE='on', **(env or {}))
    code = server.run([str(script), mode], tmp_path, full_env, out, timeout)
    return code, out.read_text()


def test_success_output_argv_cwd_env(server, tmp_path):
    code, text = _run(server, tmp_path, 'ok')
    assert code == 0
    assert 'err' in text and '"flag": "on"' in text
    assert f'"cwd": "{tmp_path}"' in text
    assert f'"path0": "{tmp_path}"' in text
    assert f'"argv": ["{tmp_path}/probe.py", "ok"]' in text


@pytest.mark.parametrize('mode,expected,needle',
                         [('exit3', 3, 'err'),
                          ('raise', 1, 'ValueError: boom'),
                          ('kill', -9, 'out')])
def test_failures_are_reported(server, tmp_path, mode, expected, needle):
    code, text = _run(server, tmp_path, mode)
    assert code == expected
    assert needle in text


def test_pythonpath_entries_are_importable(server, tmp_path):
    lib = tmp_path / 'lib'
    lib.mkdir()
    (lib / 'probe_mod.py').write_text('VALUE = 41 + 1\n')
    code, text = _run(server, tmp_path, 'import',
                      env=dict(PYTHONPATH=str(lib)))
    assert code == 0 and 'probe 42' in text


def test_timeout_kills_the_child_and_the_server_goes_on(server, tmp_path):
    with pytest.raises(subprocess.TimeoutExpired):
        _run(server, tmp_path, 'sleep', timeout=2)
    assert _run(server, tmp_path, 'exit3')[0] == 3


def test_only_tool_scripts_are_forked(tmp_path, monkeypatch):
    monkeypatch.delenv('MMKP_TEST_FRESH_PROCESSES', raising=False)
    assert _forkable(['tools/train.py', 'cfg.py'], REPO_ROOT) is True
    assert _forkable(['-c', 'pass'], REPO_ROOT) is False
    snippet = tmp_path / 'snippet.py'
    snippet.write_text('')
    assert _forkable([str(snippet)], REPO_ROOT) is False
    monkeypatch.setenv('MMKP_TEST_FRESH_PROCESSES', '1')
    assert _forkable(['tools/train.py', 'cfg.py'], REPO_ROOT) is False


def test_run_python_raises_on_a_failed_forked_tool():
    # a real tool through the server: argparse's usage error exits 2
    with pytest.raises(AssertionError, match=r'failed \(2\)'):
        run_python(['tools/train.py'])
    proc = run_python(['tools/train.py', '--help'])
    assert proc.returncode == 0 and 'usage' in proc.stdout
    assert proc.args == [sys.executable, 'tools/train.py', '--help']


CONFIG_PROBE = '''
import gc, sys
from mmengine.config import Config
from mmengine.config import config as mm_config
cfg = Config.fromfile(sys.argv[1])
first, second = cfg.pretty_text, cfg.pretty_text
memoised = mm_config.FormatCode
mm_config.FormatCode = memoised.__wrapped__  # yapf's own, uncached
direct = cfg.pretty_text
print('same', first == second == direct, 'frozen', gc.get_freeze_count())
'''


def test_children_format_configs_as_yapf_does_and_start_frozen(server,
                                                                tmp_path):
    """The memoised yapf formatting gives the text yapf gives, and the
    server's heap is in the collector's permanent generation."""
    config = os.path.join(
        REPO_ROOT, 'configs/hrnetpp/toy_persons/'
        'td-hm_hrnetpp-w16-tiny_1xb16-20e_toy-persons-128x96.py')
    code, text = _run(server, tmp_path, config, timeout=120,
                      source=CONFIG_PROBE)
    assert code == 0, text
    assert 'same True' in text, text
    assert int(text.split('frozen ')[1].split()[0]) > 100000, text
