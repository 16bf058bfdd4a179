"""Small helpers shared by tools and tests."""
import os.path as osp
import re
from typing import List


def mmpose_tool_path(name: str) -> str:
    """Absolute path of one of mmpose's stock scripts (``train.py``,
    ``test.py``, ``dist_train.sh``, ...), shipped in the mmpose wheel under
    ``mmpose/.mim/tools/``.

    Raises:
        FileNotFoundError: if the installed mmpose does not ship it.
    """
    import mmpose
    path = osp.join(osp.dirname(mmpose.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'mmpose stock tool {name!r} not found at {path}; is mmpose '
            'installed from a wheel (pip install mmpose==1.3.2)?')
    return path


#: A number as mmengine's log processor prints metric values
#: (``f'{val:.{num_digits}f}'``, so also ``nan`` / ``inf``, and ``-1.0``
#: where pycocotools has no instances of an area range).
_NUMBER = r'[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)'


def parse_metric_values(text: str, key: str = 'coco/AP') -> List[float]:
    """Every value of metric ``key`` in an mmengine log, in order.

    mmengine logs validation / test metrics as ``<key>: <value>`` items
    separated by two spaces, e.g. ``Epoch(val) [5][3/3]    coco/AP:
    0.512345  coco/AP .5: 0.845000 ...``. ``key`` must match a whole item
    name: ``coco/AP`` does not match ``coco/AP .5`` or ``coco/AP (M)``, and
    ``AP`` does not match ``coco/AP``.

    Args:
        text: log text (stdout of train.py / test.py, or a log file).
        key: metric name as logged.

    Returns:
        list of floats, possibly empty.
    """
    if not isinstance(text, str):
        raise TypeError(f'text must be a str, got {type(text).__name__}')
    if not isinstance(key, str) or not key:
        raise ValueError(f'key must be a non-empty str, got {key!r}')
    # The item name starts a line or follows whitespace; the value ends at
    # whitespace or the end of the text.
    pattern = (r'(?:^|(?<=\s))' + re.escape(key) + r': (' + _NUMBER +
               r')(?=\s|$)')
    return [float(v) for v in re.findall(pattern, text)]


def parse_metric(text: str, key: str = 'coco/AP') -> float:
    """The last value of metric ``key`` printed in an mmengine log (the
    final validation of a train.py run, or test.py's result).

    See :func:`parse_metric_values` for the matching rules.

    Raises:
        ValueError: if ``text`` holds no value of ``key``; the message shows
            the end of the text (e.g. the traceback of a failed run).
    """
    values = parse_metric_values(text, key)
    if not values:
        tail = '\n'.join(text.rstrip().splitlines()[-15:])
        raise ValueError(
            f'no {key!r} value found in the log ({len(text)} characters); '
            f'did the run reach validation/testing? Its last lines:\n{tail}')
    return values[-1]


def run_streaming(cmd: List[str], cwd: str) -> str:
    """Run ``cmd`` in ``cwd``, echoing its merged stdout / stderr line by
    line, and return that output.

    Raises:
        RuntimeError: if the command exits non-zero (names the command and
            its exit code).
    """
    import subprocess
    import sys
    print('$', ' '.join(cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    if proc.wait() != 0:
        raise RuntimeError(f'command failed with exit code {proc.returncode}:'
                           ' ' + ' '.join(cmd))
    return ''.join(lines)


def run_or_exit(cmd: List[str], cwd: str) -> str:
    """:func:`run_streaming` for the demo scripts: on failure, exit the
    process with the failing command's message instead of a traceback."""
    import sys
    try:
        return run_streaming(cmd, cwd)
    except RuntimeError as e:
        sys.exit(str(e))


def toy_data_options(root: str,
                     splits=('train', 'val', 'test')) -> List[str]:
    """``--cfg-options`` that point a toy config at a generated dataset in
    ``root`` (``make_toy_dataset`` layout): every split's ``data_root`` and
    the val / test evaluators' ``annotations/val.json``."""
    root = root.rstrip('/') + '/'
    return [f'{split}_dataloader.dataset.data_root={root}'
            for split in splits] + [
                f'val_evaluator.ann_file={root}annotations/val.json',
                f'test_evaluator.ann_file={root}annotations/val.json']
