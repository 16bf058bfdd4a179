"""The start-up hook (mmkp_ext_startup.py + .pth): mmpose's own APIs import
on this stack without the user importing mmkp_ext first."""
import importlib.machinery
import os
import os.path as osp
import subprocess
import sys
import types

from _helpers import REPO_ROOT

import mmkp_ext_startup

IMPORT_APIS = ('import sys; '
               'from mmpose.apis import init_model, inference_topdown, '
               'inference_bottomup, MMPoseInferencer; '
               'import mmpose.models; '
               'print("mmkp_ext loaded:", "mmkp_ext" in sys.modules); '
               'print("origin:", mmpose.models.__spec__.origin)')


def _run(code, **env):
    full_env = dict(os.environ, PYTHONWARNINGS='ignore', **env)
    full_env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO_ROOT, os.environ.get('PYTHONPATH')) if p)
    return subprocess.run([sys.executable, '-c', code], cwd='/',
                          env=full_env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)


def test_mmpose_apis_import_without_importing_mmkp_ext():
    """What a user of mmpose's APIs runs: no ``import mmkp_ext`` anywhere.
    Relies on the installed ``mmkp_ext_startup.pth`` (tools/install_deps.sh
    copies it; a wheel carries it)."""
    proc = _run(IMPORT_APIS)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert 'mmkp_ext loaded: True' in proc.stdout or \
        not mmkp_ext_startup.stack_needs_fixes()
    # The trigger module is mmpose's own, executed once (a second execution
    # would raise on duplicate registry names).
    assert osp.join('mmpose', 'models', '__init__.py') in proc.stdout


def test_switched_off_hook_shows_the_original_failure():
    proc = _run(IMPORT_APIS, MMKP_EXT_NO_STARTUP_HOOK='1')
    if mmkp_ext_startup.stack_needs_fixes():
        assert proc.returncode != 0
        assert 'mmcv' in proc.stdout or 'torchvision' in proc.stdout
    else:  # full mmcv + torchvision: mmpose imports on its own
        assert proc.returncode == 0, proc.stdout[-3000:]


def test_pth_line_is_harmless_without_the_module():
    with open(osp.join(REPO_ROOT, 'mmkp_ext_startup.pth')) as f:
        line = f.read()
    assert line.startswith('import ')  # site.py executes only such lines
    # -S: no site-packages, so mmkp_ext_startup cannot be found.
    proc = subprocess.run([sys.executable, '-S', '-c', line], cwd='/',
                          env={}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


def test_compiled_extension_detected_from_files(tmp_path):
    pkg = tmp_path / 'mmcv'
    pkg.mkdir()
    spec = types.SimpleNamespace(submodule_search_locations=[str(pkg)])
    assert not mmkp_ext_startup.mmcv_ships_compiled_ext(spec)
    (pkg / ('_ext' + importlib.machinery.EXTENSION_SUFFIXES[0])).write_text('')
    assert mmkp_ext_startup.mmcv_ships_compiled_ext(spec)


def test_install_is_idempotent_and_respects_switch(monkeypatch):
    mmkp_ext_startup.uninstall()
    assert mmkp_ext_startup._FINDER not in sys.meta_path
    monkeypatch.setenv('MMKP_EXT_NO_STARTUP_HOOK', '1')
    assert not mmkp_ext_startup.install()
    monkeypatch.delenv('MMKP_EXT_NO_STARTUP_HOOK')
    import mmkp_ext  # noqa: F401  (imports mmpose.models / .apis)

    # mmpose is imported in this process already: nothing to do.
    assert not mmkp_ext_startup.install()
    assert mmkp_ext_startup._FINDER not in sys.meta_path
