"""tools/mmcv_state.py decides whether the installer keeps the user's mmcv."""
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
