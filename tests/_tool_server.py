"""A fork server for the suite's runs of the project's command-line tools.

Most of the suite's subprocess time was start-up: every ``python
tools/train.py ...`` imported torch, mmengine, mmpose and mmkp_ext again
(about 4 s of CPU each, some sixty runs per suite). The server is one
long-lived Python process per pytest worker that imports those once and then
forks a child per run. The child is still a separate process with the run's
own working directory, environment, ``sys.argv``, ``sys.path[0]`` and
PYTHONPATH entries, its stdout and stderr merged into a file, its exit status
(or the signal that killed it) reported back; it only skips re-importing
what the server had already imported.

What a fork cannot reproduce is a fresh interpreter's import-time behaviour
(start-up hooks, mmcv / torchvision detection, ``custom_imports`` on a clean
``sys.modules``). ``tests._helpers.run_python`` therefore forks only the
project's and mmpose's tool scripts and runs everything else (``-c``, ``-m``,
snippets in temporary directories, ``fresh=True``) as a real subprocess;
``MMKP_TEST_FRESH_PROCESSES=1`` runs every call as a real subprocess.

Two things make a child cheaper without changing what it computes:

* ``gc.freeze()`` after the imports: the server's objects (modules, classes,
  registries: never garbage) move to the collector's permanent generation,
  so a child's collections walk only what the run itself made. mmengine's
  ``BaseDataset`` calls ``gc.collect()`` once per dataset it builds; over
  the preloaded heap that was about a fifth of a 3-iteration train.py run.
* yapf's ``FormatCode`` is memoised in mmengine's config module.
  ``Config.pretty_text`` formats the same config text up to five times per
  run (the log, the dumped config, the visualiser, every checkpoint's
  meta), 0.2-0.3 s each; yapf returns the same result for the same source
  and style, so each child formats each text once (the cache dies with the
  child).

Protocol (one request at a time, JSON lines on the server's stdin/stdout):
request ``{"argv": [script, *args], "cwd": str, "env": {...}, "out": path}``;
replies ``{"pid": int}`` once forked and ``{"status": int}`` when the child
ended (``os.waitpid`` status).
"""
import json
import os
import os.path as osp
import select
import signal
import subprocess
import sys

# Imported once in the server so that children start warm: what the tools
# import anyway (torch._dynamo: every torch optimiser's constructor imports
# it; setuptools and matplotlib: mmengine's environment report and
# visualiser).
PRELOAD = ('torch', 'cv2', 'numpy', 'scipy.stats', 'mmengine.runner',
           'mmengine.config', 'mmpose.apis', 'mmpose.datasets',
           'mmpose.evaluation', 'mmpose.engine', 'mmpose.visualization',
           'mmkp_ext', 'torch._dynamo', 'setuptools', 'matplotlib')


def _memoise_config_formatting():
    """Make ``mmengine.config.config.FormatCode`` (yapf's) return the cached
    result for a (source, style) it has formatted before."""
    from mmengine.config import config as mm_config
    format_code = mm_config.FormatCode
    cache = {}

    def memoised(unformatted_source, **kwargs):
        key = (unformatted_source, repr(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = format_code(unformatted_source, **kwargs)
        return cache[key]

    memoised.__wrapped__ = format_code
    mm_config.FormatCode = memoised


def _child(request):
    """Run one script as ``__main__`` in this (forked) process; never
    returns."""
    import atexit
    import runpy
    import traceback
    import warnings
    code = 1
    try:
        out = os.open(request['out'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        os.close(null)
        os.chdir(request['cwd'])
        env = request['env']
        os.environ.clear()
        os.environ.update(env)
        script, *args = request['argv']
        sys.argv = [script, *args]
        extra = [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
        sys.path[:] = ([osp.dirname(osp.abspath(script))] + [
            osp.abspath(p) for p in extra
        ] + [p for p in sys.path[1:] if p not in extra])
        warnings.resetwarnings()
        for option in filter(None, env.get('PYTHONWARNINGS', '').split(',')):
            warnings.simplefilter(option.split(':')[0])
        if env.get('OMP_NUM_THREADS', '').isdigit():
            import torch
            torch.set_num_threads(int(env['OMP_NUM_THREADS']))
        try:
            runpy.run_path(script, run_name='__main__')
            code = 0
        except SystemExit as exc:
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def serve():
    """Server loop: read requests from stdin until EOF, fork a child for
    each, report its pid and its wait status on stdout."""
    import gc
    import importlib
    for name in PRELOAD:
        importlib.import_module(name)
    _memoise_config_formatting()
    gc.collect()
    gc.freeze()
    print(json.dumps({'ready': True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({'pid': pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({'status': status}), flush=True)


class ToolServer:
    """Client side: starts the server (``python tests/_tool_server.py``)
    with the caller's environment and runs scripts through it."""

    def __init__(self, python=sys.executable, startup_timeout=300):
        self.proc = subprocess.Popen(
            [python, osp.abspath(__file__)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=osp.dirname(osp.abspath(__file__)))
        self._reply(startup_timeout, 'ready')

    def _reply(self, timeout, key):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f'tool server gave no {key!r} in {timeout} s')
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(
                f'tool server exited ({self.proc.poll()}) before {key!r}')
        return json.loads(line)[key]

    def alive(self):
        return self.proc.poll() is None

    def run(self, argv, cwd, env, out_path, timeout):
        """Run ``python ARGV`` (a script and its arguments) in a forked
        child; return its return code as ``subprocess`` reports one
        (negative: killed by that signal). Raises
        ``subprocess.TimeoutExpired`` after ``timeout`` seconds (the child
        is killed)."""
        self.proc.stdin.write(
            json.dumps(dict(argv=list(argv), cwd=str(cwd), env=dict(env),
                            out=str(out_path))) + '\n')
        self.proc.stdin.flush()
        pid = self._reply(60, 'pid')
        try:
            status = self._reply(timeout, 'status')
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            self._reply(60, 'status')
            raise subprocess.TimeoutExpired(argv, timeout)
        return os.waitstatus_to_exitcode(status)

    def close(self):
        if self.alive():
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


if __name__ == '__main__':
    serve()
