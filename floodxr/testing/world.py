"""Deprecated: the synthetic world is a training source and lives in :mod:`floodxr.data.synthetic`.

This alias keeps ``floodxr.testing.world`` working for one release.
"""

import warnings

from floodxr.data.synthetic import *  # noqa: F403
from floodxr.data.synthetic import __all__  # noqa: F401

warnings.warn(
    "floodxr.testing.world moved to floodxr.data.synthetic; import it from there "
    "(the old name goes in the next release)",
    FutureWarning,
    stacklevel=2,
)
