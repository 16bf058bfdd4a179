"""mmkp_ext: keypoint-detection methods as an MMPose 1.x plugin.

Importing this package first applies the narrow compatibility fixes of
:mod:`mmkp_ext.compat` (each only where the installed stack needs it), then
imports every submodule so that their components register into mmpose's own
registries.
"""
from . import compat

compat.apply_all()

from . import apis  # noqa: E402,F401
from . import codecs  # noqa: E402,F401
from . import converters  # noqa: E402,F401
from . import datasets  # noqa: E402,F401
from . import engine  # noqa: E402,F401
from . import evaluation  # noqa: E402,F401
from . import grouping  # noqa: E402,F401
from . import models  # noqa: E402,F401
from .version import __version__  # noqa: E402,F401
