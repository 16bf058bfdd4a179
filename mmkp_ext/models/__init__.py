"""Models of mmkp_ext; importing registers them into mmpose's MODELS."""
from . import backbones  # noqa: F401
from . import heads  # noqa: F401
from . import layers  # noqa: F401
from . import losses  # noqa: F401
from . import necks  # noqa: F401
from . import pose_estimators  # noqa: F401
