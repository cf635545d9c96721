"""Where pixels come from: Sen1Floods11 chips, STAC APIs, and Sentinel-1/2 pairing."""

from floodxr.data import pairing, sen1floods11, stac

__all__ = ["pairing", "sen1floods11", "stac"]
