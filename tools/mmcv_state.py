"""Print which mmcv distribution the current Python has, for
tools/install_deps.sh.

Prints ``none``, or ``<dist>-ok`` / ``<dist>-too-old`` / ``<dist>-too-new``
where ``<dist>`` is ``mmcv`` (the full package; kept as it is, whether or not
its ops were compiled), ``mmcv-full`` (1.x) or ``mmcv-lite``; mmpose 1.3.2
needs 2.0 <= version < 2.2. Looks at installed package metadata only (standard
library), so it works before mmengine or torch are installed, and never
imports mmcv.
"""
import re
from importlib import metadata


def mmcv_state() -> str:
    for dist in ('mmcv', 'mmcv-full', 'mmcv-lite'):
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        major_minor = tuple(int(x) for x in re.findall(r'\d+', version)[:2])
        if major_minor < (2, 0):
            return dist + '-too-old'
        return dist + ('-ok' if major_minor < (2, 2) else '-too-new')
    return 'none'


if __name__ == '__main__':
    print(mmcv_state())
