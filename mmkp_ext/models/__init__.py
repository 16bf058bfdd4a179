"""Models of mmkp_ext; importing registers them into mmpose's MODELS."""
from . import heads  # noqa: F401
