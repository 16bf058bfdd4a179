"""The installer: tools/mmcv_state.py (keeps the user's mmcv) and
tools/install_deps.sh itself, run against scratch environments."""
import subprocess
import sys

import pytest
from _helpers import REPO_ROOT


def _state(tmp_path, dists):
    for name, version in dists:
        info = tmp_path / f'{name.replace("-", "_")}-{version}.dist-info'
        info.mkdir()
        (info / 'METADATA').write_text(
            f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n')
    # -S: no site-packages, so only the fake distributions are visible.
    out = subprocess.run(
        [sys.executable, '-S', 'tools/mmcv_state.py'], cwd=REPO_ROOT,
        env={'PYTHONPATH': str(tmp_path)}, capture_output=True, text=True,
        check=True)
    return out.stdout.strip()


@pytest.mark.parametrize('dists,expected', [
    ([], 'none'),
    ([('mmcv', '2.1.0')], 'mmcv-ok'),
    ([('mmcv', '2.0.0rc4')], 'mmcv-ok'),
    ([('mmcv-lite', '2.1.0')], 'mmcv-lite-ok'),
    ([('mmcv', '2.2.0')], 'mmcv-too-new'),
    ([('mmcv-full', '1.7.2')], 'mmcv-full-too-old'),
    # A full mmcv wins over a leftover mmcv-lite: it is never replaced.
    ([('mmcv-lite', '2.1.0'), ('mmcv', '2.1.0')], 'mmcv-ok'),
])
def test_mmcv_state(tmp_path, dists, expected):
    assert _state(tmp_path, dists) == expected


# ------------------------------------------------ tools/install_deps.sh
# The installer runs for real against a scratch virtual environment whose
# ``pip`` is a fake that records its arguments and "installs" stub modules
# (torch, mmpose, xtcocotools, mmkp_ext, ...) so the installer's own import
# checks pass. Nothing is downloaded.
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import stat  # noqa: E402
import sysconfig  # noqa: E402
import textwrap  # noqa: E402

FAKE_PIP = r'''
import json, os, re, sys, pathlib
args = sys.argv[1:]
with open(os.environ['FAKE_PIP_LOG'], 'a') as f:
    f.write(json.dumps(args) + '\n')
site = pathlib.Path(__file__).resolve().parent.parent
STUBS = {
    'torch': {'torch/__init__.py': "__version__ = '2.13.0+fake'\n"},
    'xtcocotools': {'xtcocotools/__init__.py': '',
                    'xtcocotools/_mask.py': ''},
    'mmpose': {'mmpose/__init__.py': '', 'mmpose/models/__init__.py': '',
               'mmpose/visualization/__init__.py': '',
               'mmpose/apis/__init__.py':
               'init_model = inference_topdown = None\n'},
    '.': {'mmkp_ext/__init__.py': "__version__ = 'stub'\n"},
}
def dist_info(name, version):
    d = site / f'{name.replace("-", "_")}-{version}.dist-info'
    d.mkdir(exist_ok=True)
    (d / 'METADATA').write_text(
        f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n')
if args and args[0] == 'install':
    for a in args[1:]:
        name = re.split('[=<>]', a)[0].lower()
        for rel, text in STUBS.get(name, {}).items():
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            (site / rel).write_text(text)
        if name in ('setuptools', 'mmcv-lite', 'opencv-python-headless'):
            dist_info(name, {'setuptools': '79.0.1'}.get(name, '1.0'))
'''


def _scratch_venv(path):
    """A bare venv (no pip) with the fake pip planted in site-packages."""
    import venv
    venv.EnvBuilder(with_pip=False).create(str(path))
    py = path / 'bin' / 'python'
    site = subprocess.run(
        [str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()'
         '["purelib"])'], capture_output=True, text=True,
        check=True).stdout.strip()
    pip = os.path.join(site, 'pip')
    os.makedirs(pip)
    open(os.path.join(pip, '__init__.py'), 'w').close()
    with open(os.path.join(pip, '__main__.py'), 'w') as f:
        f.write(FAKE_PIP)
    return py, site


def _repo_copy(tmp_path):
    """The installer and what it hashes, in a scratch checkout."""
    root = tmp_path / 'repo'
    (root / 'tools').mkdir(parents=True)
    for rel in ('tools/install_deps.sh', 'tools/mmcv_state.py',
                'tools/python_env_probe.py', 'setup.py',
                'mmkp_ext_startup.py', 'mmkp_ext_startup.pth'):
        shutil.copy(os.path.join(REPO_ROOT, rel), root / rel)
    shutil.copytree(os.path.join(REPO_ROOT, 'requirements'),
                    root / 'requirements')
    return root


def _wrapper(path, real, probe_sed):
    """An interpreter that answers the environment probe differently."""
    path.write_text(textwrap.dedent(f'''\
        #!/bin/bash
        if [[ "${{1:-}}" == *python_env_probe.py ]]; then
          "{real}" "$@" | sed {probe_sed}
          exit "${{PIPESTATUS[0]}}"
        fi
        exec "{real}" "$@"
        '''))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _install(root, log, **env):
    full = {k: v for k, v in os.environ.items()
            if k not in ('PYTHON', 'TORCH_SPEC', 'TORCH_INDEX_URL', 'CC',
                         'BASE_PYTHON', 'MMKP_ALLOW_PYTHON')}
    full['FAKE_PIP_LOG'] = str(log)
    full.update({k: str(v) for k, v in env.items()})
    proc = subprocess.run(['bash', 'tools/install_deps.sh'], cwd=root,
                          env=full, capture_output=True, text=True,
                          timeout=300)
    calls = ([json.loads(line) for line in log.read_text().splitlines()]
             if log.exists() else [])
    return proc, calls


def _flat(calls):
    return [a for call in calls for a in call]


@pytest.fixture
def env(tmp_path):
    py, site = _scratch_venv(tmp_path / 'venv')
    return dict(root=_repo_copy(tmp_path), py=py, site=site,
                log=tmp_path / 'pip.log')


def test_installer_fresh_then_noop(env):
    proc, calls = _install(env['root'], env['log'], PYTHON=env['py'])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the start-up hook that lets mmpose's own APIs import on mmcv-lite
    assert os.path.isfile(os.path.join(env['site'], 'mmkp_ext_startup.pth'))
    args = _flat(calls)
    assert ['install', '--disable-pip-version-check', '-q',
            'torch==2.13.0'] in calls
    assert 'mmcv-lite==2.1.0' in args
    # Exactly one OpenCV distribution, the headless one.
    assert args.count('opencv-python-headless') == 1
    assert 'opencv-python' not in args
    # Every install except torch and the editable mmkp_ext is constrained.
    constraints = os.path.join(env['root'], 'requirements',
                               'constraints.txt')
    for call in calls:
        if call[-1] not in ('torch==2.13.0', '.'):
            assert ['-c', constraints] == call[3:5] or constraints in call
    assert any('--no-binary' in c and 'xtcocotools' in c for c in calls)
    assert any(c[-2:] == ['-e', '.'] for c in calls)
    # setuptools changed in a user's environment: said so.
    assert 'NOTE: changing setuptools' in proc.stdout
    # The stamp lives in the checkout, not in the environment.
    assert len(os.listdir(env['root'] / '.install_stamps')) == 1
    prefix = env['py'].parent.parent
    assert not any('mmkp' in p for p in os.listdir(prefix))
    # Second run: nothing changed, nothing installed.
    n = len(calls)
    proc, calls = _install(env['root'], env['log'], PYTHON=env['py'])
    assert proc.returncode == 0 and len(calls) == n, proc.stderr


def test_installer_keeps_torch_and_full_mmcv(env):
    site = env['site']
    os.makedirs(os.path.join(site, 'torch'))
    with open(os.path.join(site, 'torch', '__init__.py'), 'w') as f:
        f.write("__version__ = '2.4.1+cu121'\n")
    info = os.path.join(site, 'mmcv-2.1.0.dist-info')
    os.makedirs(info)
    with open(os.path.join(info, 'METADATA'), 'w') as f:
        f.write('Metadata-Version: 2.1\nName: mmcv\nVersion: 2.1.0\n')
    proc, calls = _install(env['root'], env['log'], PYTHON=env['py'])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    args = _flat(calls)
    assert 'keeping installed torch 2.4.1+cu121' in proc.stdout
    assert 'keeping the installed full mmcv' in proc.stdout
    assert not any(a.startswith(('torch', 'mmcv')) for a in args)


def test_installer_torch_spec_and_index(env):
    proc, calls = _install(env['root'], env['log'], PYTHON=env['py'],
                           TORCH_SPEC='torch==2.9.1',
                           TORCH_INDEX_URL='https://example.invalid/cpu')
    assert proc.returncode == 0, proc.stderr
    assert calls[0][-3:] == ['--index-url', 'https://example.invalid/cpu',
                             'torch==2.9.1']


def test_installer_refuses_unsupported_python(env, tmp_path):
    py = _wrapper(tmp_path / 'py38', env['py'], "-e 's/^version=.*/version=3.8/'")
    proc, calls = _install(env['root'], env['log'], PYTHON=py)
    assert proc.returncode != 0 and calls == []
    assert 'Python 3.8' in proc.stderr and '3.10 3.11 3.12' in proc.stderr


def test_installer_refuses_system_interpreter(env, tmp_path):
    py = _wrapper(tmp_path / 'syspy', env['py'],
                  "-e 's/^venv=.*/venv=0/' "
                  "-e 's/^externally_managed=.*/externally_managed=1/'")
    proc, calls = _install(env['root'], env['log'], PYTHON=py)
    assert proc.returncode != 0 and calls == []
    assert 'PEP 668' in proc.stderr
    py = _wrapper(tmp_path / 'ropy', env['py'],
                  "-e 's/^writable=.*/writable=0/'")
    proc, calls = _install(env['root'], env['log'], PYTHON=py)
    assert proc.returncode != 0 and calls == []
    assert 'cannot write' in proc.stderr


def test_installer_stops_when_mmcv_detection_crashes(env):
    (env['root'] / 'tools' / 'mmcv_state.py').write_text(
        "raise RuntimeError('metadata is corrupt')\n")
    proc, calls = _install(env['root'], env['log'], PYTHON=env['py'])
    assert proc.returncode != 0
    assert 'could not tell which mmcv' in proc.stderr
    assert not any(a.startswith('mmcv') for a in _flat(calls))


def test_installer_needs_a_compiler_for_xtcocotools(env):
    proc, calls = _install(env['root'], env['log'], PYTHON=env['py'],
                           CC='/nonexistent/cc')
    assert proc.returncode != 0 and 'no C compiler' in proc.stderr
    assert not any('xtcocotools' in c for c in calls)


def test_installer_leaves_users_two_opencvs_but_warns(env):
    for name in ('opencv-python', 'opencv-python-headless'):
        info = os.path.join(env['site'], f'{name.replace("-", "_")}-5.0.'
                            'dist-info')
        os.makedirs(info)
        with open(os.path.join(info, 'METADATA'), 'w') as f:
            f.write(f'Metadata-Version: 2.1\nName: {name}\nVersion: 5.0\n')
    proc, calls = _install(env['root'], env['log'], PYTHON=env['py'])
    assert proc.returncode == 0, proc.stderr
    assert 'several OpenCV distributions' in proc.stdout
    assert not any(c[0] == 'uninstall' for c in calls)
    assert 'opencv-python-headless' not in _flat(calls)


def test_installer_recreates_half_made_venv(env, tmp_path):
    """A .venv without a working python/pip (interrupted creation) is
    rebuilt from BASE_PYTHON instead of failing halfway."""
    (env['root'] / '.venv' / 'bin').mkdir(parents=True)
    base = tmp_path / 'base_python'
    base.write_text(textwrap.dedent(f'''\
        #!/bin/bash
        if [ "${{1:-}} ${{2:-}}" = "-m venv" ]; then
          "{sys.executable}" -c "
        import sys; sys.path[:0] = ['{os.path.dirname(__file__)}', '{os.path.dirname(os.path.dirname(__file__))}']
        import pathlib, test_install_deps as t
        t._scratch_venv(pathlib.Path('$3'))"
          exit $?
        fi
        exec "{env['py']}" "$@"
        '''))
    base.chmod(base.stat().st_mode | stat.S_IEXEC)
    proc, calls = _install(env['root'], env['log'], BASE_PYTHON=base)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '.venv is incomplete' in proc.stdout
    assert (env['root'] / '.venv' / 'bin' / 'python').exists()
    assert any(c[-1] == 'torch==2.13.0' for c in calls)
