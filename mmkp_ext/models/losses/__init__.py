"""Losses; importing registers them into ``mmpose.registry.MODELS``."""
from .centernet_focal_loss import CenterNetFocalLoss
from .centernet_reg_l1_loss import CenterNetRegL1Loss
from .higherhrnet_ae_loss import HigherHRNetAELoss
from .poseur_rle_loss import PoseurRLELoss
from .swahr_loss import SWAHRLoss

__all__ = ['CenterNetFocalLoss', 'CenterNetRegL1Loss']
__all__ += ['HigherHRNetAELoss', 'SWAHRLoss']
__all__ += ['PoseurRLELoss']
