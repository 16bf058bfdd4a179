"""Small helpers shared by tools and tests."""
import os.path as osp


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
