"""``python -m mmkp_ext``: version and what the compatibility layer found
(mmcv flavour, torchvision, active fixes), with the original errors."""
import mmkp_ext
from mmkp_ext import compat

print(f'mmkp_ext {mmkp_ext.__version__}')
print(compat.report())
