"""Where pixels come from: Sen1Floods11 chips (and, later, STAC catalogues)."""

from floodxr.data import sen1floods11

__all__ = ["sen1floods11"]
