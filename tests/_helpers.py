"""Helpers shared by the tests: repository paths, the real-data folder,
subprocess runs. Importable as ``_helpers`` (pytest.ini puts tests/ on the path)."""
import os
import os.path as osp
import subprocess
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def shared_data_dir():
    """``$MMKP_SHARED_DATA`` or ``../shared/data`` beside the checkout."""
    return os.environ.get('MMKP_SHARED_DATA',
                          osp.join(osp.dirname(REPO_ROOT), 'shared', 'data'))


def run_python(args, cwd=REPO_ROOT, env=None, timeout=600, check=True):
    """Run ``python ARGS`` in a subprocess; return the CompletedProcess with
    stdout and stderr merged into ``.stdout``."""
    full_env = dict(os.environ)
    full_env.setdefault('PYTHONWARNINGS', 'ignore')
    full_env['OMP_NUM_THREADS'] = full_env.get('OMP_NUM_THREADS', '2')
    if env:
        full_env.update(env)
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=full_env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'python {" ".join(args)} failed '
                             f'({proc.returncode}):\n{proc.stdout[-6000:]}')
    return proc
