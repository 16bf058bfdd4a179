"""Models of mmkp_ext; importing registers them into ``mmpose.registry.MODELS``."""
from . import heads  # noqa: F401
