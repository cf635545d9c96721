"""Errors and warnings raised by floodxr.

Every error is a :class:`FloodxrError`; its message names the offending value and says how to fix
the input. Catch ``FloodxrError`` to handle all of them at once.
"""

from __future__ import annotations

__all__ = [
    "FloodxrError",
    "FloodxrWarning",
    "InSampleWarning",
    "MissingBandError",
    "MissingDimensionError",
    "UnitsError",
    "DataLayoutError",
    "ChipNotFoundError",
    "ChipReadError",
    "UnknownEventError",
    "InvalidOptionError",
    "NotANumberError",
    "ShapeMismatchError",
    "InvalidLabelError",
    "InvalidGridError",
    "NotAMaskError",
    "OutputExistsError",
    "OutputPathError",
    "WrongTypeError",
    "UnknownModelError",
    "UnknownEncoderError",
    "ModelNotAvailableError",
    "CheckpointError",
    "StacApiError",
    "NoItemsError",
    "MissingAssetError",
    "AssetReadError",
    "RunMismatchError",
    "BasinInputError",
    "MissingChipsWarning",
    "UnpairedScenesWarning",
]


class FloodxrError(Exception):
    """Base class of every error floodxr raises on bad input."""


class FloodxrWarning(UserWarning):
    """Base class of floodxr's warnings."""


class _LookupMessage(FloodxrError, KeyError):
    """A KeyError whose message prints as written (KeyError would repr() it)."""

    def __str__(self) -> str:
        return str(self.args[0])


class MissingBandError(_LookupMessage):
    """An input lacks a band (polarisation or spectral band) that the operation needs."""


class MissingDimensionError(FloodxrError, ValueError):
    """An input lacks a dimension (``band``, ``y``, ``x``) that the operation needs."""


class UnitsError(FloodxrError, ValueError):
    """Data are in the wrong units for the operation (linear power vs dB)."""


class DataLayoutError(FloodxrError, FileNotFoundError):
    """A data folder does not have the layout floodxr expects."""


class ChipNotFoundError(FloodxrError, FileNotFoundError):
    """A named chip has no file in the data folder."""


class ChipReadError(FloodxrError, OSError):
    """A chip's files exist but cannot be read (truncated or corrupt)."""


class UnknownEventError(_LookupMessage):
    """A chip's flood event is not in the event metadata."""


class InvalidOptionError(FloodxrError, ValueError):
    """An option key or value passed to :func:`floodxr.set_options` (or a keyword) is invalid."""


class NotANumberError(InvalidOptionError, TypeError):
    """A number was expected (a bool, a string or another object was passed)."""


class ShapeMismatchError(FloodxrError, ValueError):
    """Two arrays that must share a grid (prediction and label) do not."""


class InvalidLabelError(FloodxrError, ValueError):
    """A label or prediction holds values that are not the classes floodxr scores."""


class InvalidGridError(FloodxrError, ValueError):
    """Coordinates, transform and CRS that cannot describe a place on Earth together."""


class InvalidLayerError(FloodxrError, ValueError):
    """An ancillary layer (DEM, water occurrence, reference water) holds values it cannot."""


class NotAMaskError(FloodxrError, ValueError):
    """A water mask was expected (1 water, 0 not water, nodata), got other values."""


class OutputExistsError(FloodxrError, FileExistsError):
    """A writer would overwrite an existing file; floodxr never does so silently."""


class OutputPathError(FloodxrError, ValueError):
    """An output path cannot hold the output: a folder for a file, a file for a store, ..."""


class WrongTypeError(FloodxrError, TypeError):
    """An object of the wrong kind was passed (a Dataset where a mask DataArray is needed)."""


class UnknownModelError(_LookupMessage):
    """A model name is neither registered nor a checkpoint path."""


class UnknownEncoderError(_LookupMessage):
    """An encoder name that neither segmentation-models-pytorch nor timm knows."""


class ModelNotAvailableError(FloodxrError, LookupError):
    """A registered model name has no weights on this machine."""


class CheckpointError(FloodxrError, ValueError):
    """A checkpoint is corrupt, incomplete, or does not match its configuration or the input."""


class StacApiError(FloodxrError, ConnectionError):
    """A STAC API could not be reached or kept failing after retries (or timed out)."""


class NoItemsError(FloodxrError, LookupError):
    """A STAC search returned no item."""


class MissingAssetError(_LookupMessage):
    """A STAC item lacks an asset (band) that loading needs."""


class AssetReadError(FloodxrError, OSError):
    """The pixels of an asset (a STAC asset URL or a file) could not be read."""


class RunMismatchError(FloodxrError, ValueError):
    """A training output folder holds a run with other settings; it is never overwritten."""


class BasinInputError(FloodxrError, ValueError):
    """Basins that cannot be mapped: bad ids or geometries, a missing id column, a bad store."""


class MissingChipsWarning(FloodxrWarning):
    """Chips listed in a split file are absent from the data folder and were skipped."""


class InSampleWarning(FloodxrWarning):
    """A model is scored on scenes it was trained on: the score is in-sample, not a test."""


class UnpairedScenesWarning(FloodxrWarning):
    """Sentinel-1 scenes have no Sentinel-2 partner in the time window under the cloud limit."""
