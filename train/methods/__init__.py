"""CAM methods of the paper (docs/method.md §12): cam (WGAP), wildcat, acol, prm, adl, cutmix,
tscam and apvit (architectures: they pin their backbone)."""

from aucues.train.methods.base import (Method, Opt, apply_method, available_methods, get_method,
                                       parse_option_flags, register_method, resolve_options)
from aucues.train.methods import cam as _cam  # noqa: F401,E402  (registration)
from aucues.train.methods import wildcat as _wildcat  # noqa: F401,E402
from aucues.train.methods import acol as _acol  # noqa: F401,E402
from aucues.train.methods import prm as _prm  # noqa: F401,E402
from aucues.train.methods import adl as _adl  # noqa: F401,E402
from aucues.train.methods import cutmix as _cutmix  # noqa: F401,E402
from aucues.train.methods import tscam as _tscam  # noqa: F401,E402
from aucues.train.methods import apvit as _apvit  # noqa: F401,E402

__all__ = ["Method", "Opt", "apply_method", "available_methods", "get_method", "parse_option_flags",
           "register_method", "resolve_options"]
