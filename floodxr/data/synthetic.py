"""A synthetic world of paired Sentinel-1 / Sentinel-2 flood scenes with known water.

Each scene is built the way the signals arise, so that the classic errors appear by themselves
rather than being painted on:

1. **Terrain and water.** A smooth random elevation field (plus, in hilly scenes, ridges); the
   flood fills everything below a water level chosen so that the scene's water fraction follows
   Sen1Floods11's spread (many chips almost dry, a few almost all water); a meandering river is
   carved in most scenes; small ponds / paddies appear in agricultural scenes.
2. **Land cover** on rotated field parcels: cropland, grassland, forest, bare soil, wet soil,
   urban clusters; some flooded land under a canopy becomes *flooded vegetation*, and shallow
   flood over fields *emergent vegetation*.
3. **Sentinel-1** (``vv``, ``vh``, dB): per-class sigma-0 with per-scene draws of everything a
   network could otherwise learn as a constant: the incidence angle (and its slope across the
   scene), GRD sigma-0 or RTC gamma-0, a calibration offset, a land level (moisture, season),
   a calm-water level and the wind over the water (calm, breezy, windy; gusty in space, VH
   rising by a fraction of VV), the noise floor (NESZ) and how much of it was removed. Within a
   scene: parcel and texture variation, sand / tarmac that look like water, radar shadow (dark,
   *not* water) and bright fore slopes in hilly scenes, double-bounce flooded vegetation, shallow
   water with emergent crops, point targets in towns, the GRD impulse response (mixed pixels at
   shores), multiplicative speckle correlated over ~2 px (GRD: ENL ~4.4), and additive thermal
   noise, partly subtracted as ESA's noise removal does (so calm water can fall far below NESZ).
4. **Sentinel-2** (``B02 B03 B04 B08 B11``, top-of-atmosphere reflectance x 10000 like
   Sen1Floods11's L1C chips): per-class spectra, sediment-laden flood water, haze, clouds
   (bright in all bands) with their shifted shadows (dark in all bands). S2 is not taken at
   S1's time: Sen1Floods11's S1 and S2 dates differ by up to two days, and in a third of the
   scenes the flood's fringe has receded (moist soil in S2) or not yet risen.
5. **Labels.** ``water`` is the truth at the S1 time; ``label`` is the "hand label": the truth
   with -1 under thick cloud (where Sen1Floods11's annotators mark pixels invalid);
   ``weak_label`` is :func:`floodxr.preprocess.weak_labels` of the S2 bands with a brightness
   cloud mask (-1 where B02 > 2500): it misses flooded and emergent vegetation and the changed
   fringe,
   lets thin cloud edges through, and (with the NDWI rule) misses sediment-laden water, the
   systematic errors the paper's weak-label baseline learns.

Where the numbers come from (C-band, VV/VH, sigma-0 in dB unless said):

* calm open water -20 to -26 VV and -26 to -34 VH, falling ~0.3 dB per degree of incidence;
  wind above ~3 m/s raises VV by up to ~12 dB (Bragg scattering), cross-pol far less
  (Martinis et al. 2015, Twele et al. 2016; Sen1Floods11's per-event VH Otsu thresholds -25.1 to
  -19.6 dB in ``Sen1Floods11_Metadata.geojson``);
* crops / grass -9 to -13 VV, -15 to -20 VH; forest -6.5 to -8 VV, -12 to -14 VH; bare soil
  -12 to -16 VV, -19 to -24 VH; towns -4 to +3 VV with point targets above +10 dB; land falls
  ~0.1 dB per degree (Veloso et al. 2017, ESA Sentinel-1 user guide);
* sand, tarmac and smooth dry soil are specular like calm water: -17 to -22 VV, -24 to -29 VH
  (the water look-alikes of Martinis et al. 2015);
* flooded vegetation double bounce: VV up 3-6 dB over the canopy, VH little changed
  (Tsyganskaya et al. 2018); shallow floods over fields with emergent crops / grass between
  water and field, about -15 dB VV and -22 dB VH (flooded rice and grassland in the same
  review): the "bright water" that hand labels call water and thresholds miss;
* IW thermal noise (NESZ) -22 to -28 dB, scalloped across the swath; ESA's noise removal
  subtracts an estimate, leaving values far below NESZ over calm water (Sen1Floods11's chips go
  down to -57 dB); GRDH: 20 x 22 m resolution on 10 m pixels, ENL 4.4 (ESA S1 user guide);
* gamma-0 = sigma-0 / cos(incidence): +0.6 to +1.6 dB at 30-46 deg, the offset between Earth
  Engine's GRD sigma-0 (Sen1Floods11) and RTC gamma-0 (Microsoft Planetary Computer);
* S2 TOA reflectance: water B08 200-800 and B11 50-400, sediment-laden flood water up to
  B04 ~1500 and B08 ~1100 (suspended sediment raises red and NIR, Ritchie et al. 2003),
  vegetation B08 2500-3500 at its peak but as low as ~1400 in a flood season's stressed or
  sparse cover (the NIR excess over red scaled by 0.35-1.1 per scene), soil B04 1300-1800 and
  B11 2500-3200, clouds 3000-8000, a per-scene gain of 0.85-1.2 (ESA S2 user guide; USGS
  spectral library values plus 600-1000 of path radiance in B02 for TOA).

Scene-level ranges span what Sentinel-1 meets rather than what a few chips show (issue 23):

* the land's per-scene shift is -5 to +5 dB (crop VH -21.5 to -11.5, bare soil to -25.5, forest
  to -8; Veloso et al. 2017 report crop VH from -25 to -12 dB over a season), where it was
  -2 to +2.5 dB, the spread of the development chips' land medians (VH -18 to -14);
* wind-roughened water reaches about -8 dB VV (CMOD5 at 10-15 m/s and 30-46 deg incidence,
  Hersbach et al. 2007; a quarter of the scenes draw a 7-15 dB rise, capped there) with VH
  rising 0.15-0.7 times as much, where the rise stopped at 12 dB with 20 % of the scenes and a
  VH share of 0.2-0.6, set so the world covered the chips' water (VV -19 to -11 dB);
* arid scenes (12 %): 20-60 % of the land dry sand and smooth soil as dark as calm water
  (Martinis et al. 2015), on land shifted 0 to -5 dB; before, look-alikes covered at most 8 %;
* emergent vegetation in half of the flooded scenes over 20-70 % of the shallowest flood, and
  flooded canopy in half of those with trees in the water (Tsyganskaya et al. 2018), where they
  were 35 % / 40 % of the flood's shallowest 40 %, chosen to reproduce the chips' bright water;
* hilly scenes 35 % with slopes up to 12x steeper (radar shadow and layover), where 30 % and 9x.

Together the scene medians span water VV about -24 to -6 dB and VH -30 to -18 dB (5th-95th
percentiles), land VH -25 to -11 dB and a water-land VH contrast from below 0 to 15 dB
(``python benchmarks/world_ranges.py --json``: 300 scenes). The calm-water, class and sensor
numbers above come from the cited literature.
The radiometric augmentations of :class:`floodxr.train.Augment` can hide absolute levels
further; the shipped students are trained without them (``docs/model-card.md`` says why).
Every number lives in :data:`WORLD` so a study can change it.

Two draws were tried for the issue's weak contrasts and are **off** in :data:`WORLD` (their
probability 0; ``docs/model-card.md`` has the measurements), kept so that a study can turn them
on; both use a random stream of their own, so a scene with neither is the same as without them:

* ``bright_flood``: in a share of the flooded, not arid scenes the whole flood is only 1.5-8 dB
  darker than the scene's land in VH and 0-6 dB in VV (wind-roughened open water, flooded grass
  and crops: Tsyganskaya et al. 2018, Martinis et al. 2015), where the world's bright water
  otherwise comes in patches beside calm water. At 20 % of the scenes the context student
  learned it (stress family "bright water" 0.58 against a fixed threshold's 0.43) but called
  62 % of a plain, even synthetic field water and fell from 0.88 to 0.78 on the real chips it
  never saw: at 109 px of context an even flood a few dB darker than the land and even land are
  the same picture;
* ``even_land``: in a share of the scenes the land is mostly one class and varies less between
  and within parcels (large uniform fields, pasture, closed forest). With bright floods it
  stopped the false alarms and also the bright floods (0.15 on that family) and scored 0.83 on
  the real chips.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy import ndimage

from floodxr.errors import InvalidOptionError
from floodxr.grid import coords, north_up, transform
from floodxr.preprocess import weak_labels

__all__ = ["WORLD", "S2_WORLD_BANDS", "paired_scene", "paired_scenes", "write_world"]

S2_WORLD_BANDS = ("B02", "B03", "B04", "B08", "B11")

#: (VV, VH) mean backscatter in dB and S2 TOA spectra (B02, B03, B04, B08, B11) per class.
WORLD: Mapping[str, Any] = {
    # (VV, VH) sigma-0 in dB at 38 deg incidence; land classes before the scene's land shift,
    # open water before wind, incidence and the noise floor
    "s1": {
        "crop": (-10.5, -16.5),
        "grass": (-12.0, -18.5),
        "forest": (-7.5, -13.0),
        "bare": (-13.0, -20.5),
        "wet_soil": (-9.5, -16.0),
        "urban": (-3.0, -10.0),
        "smooth": (-19.0, -26.5),  # sand, tarmac, smooth dry soil: dark like water, not water
        "flooded_vegetation": (-4.0, -13.5),
        "emergent_vegetation": (-15.0, -22.0),
        "water": (-23.0, -31.0),
    },
    "incidence_deg": (30.0, 46.0),  # IW swath; the scene's mean incidence
    "incidence_slope_db": {"land": -0.12, "water": -0.35},  # dB per degree above 38
    "gamma0_probability": 0.4,  # RTC gamma-0 (Planetary Computer) instead of GRD sigma-0 (GEE)
    "s1_scene_offset_db": 1.0,  # sd of a per-scene, per-polarisation calibration offset
    # per-scene shift of all land (moisture, season, crop stage, arid vs humid): crop VH from
    # -21.5 to -11.5 dB, bare soil to -25.5, forest to -8 (Veloso et al. 2017: VH of crops over a
    # season -25 to -12 dB; ESA Sentinel-1 user guide)
    "s1_land_shift_db": (-5.0, 5.0),
    "s1_class_jitter_db": 1.2,  # sd of a per-scene shift of each class mean
    "s1_parcel_sd_db": 1.3,  # sd between parcels of one class
    "water_level_db": (-3.0, 3.0),  # per-scene spread of calm water about its mean
    # wind over the water: P(state), VV rise range (dB); VH rises by a fraction of it. Calm
    # inland water -26 to -20 dB VV; wind-roughened up to about -8 dB VV at 30-46 deg (CMOD5
    # at 10-15 m/s, Hersbach et al. 2007), VH far less (Vachon & Wolfe 2011)
    "water_wind_db": ((0.40, (0.0, 2.0)), (0.35, (2.0, 7.0)), (0.25, (7.0, 15.0))),
    "water_wind_vh_fraction": (0.15, 0.7),
    "water_vv_max_db": -8.0,  # the scene's wind-roughened water mean stays below this
    "smooth_lookalike": (0.3, 0.08),  # P(a scene has sand / tarmac parcels), max parcel share
    # arid scenes: dry sand and smooth soil over much of the land, darker than most water
    # (Martinis et al. 2015: sand -17 to -25 dB VV); P(arid), share of parcels, land shift
    "arid": (0.12, (0.2, 0.6), (-5.0, 0.0)),
    # shallow floods over fields with crops / grass sticking out, and flooded canopies
    # (Tsyganskaya et al. 2018): P(a scene has emergent vegetation), the shallowest share of the
    # flood where it can appear; P(flooded canopy where trees stand in the water)
    "emergent": (0.5, (0.2, 0.7)),
    "flooded_canopy": 0.5,
    # off (probability 0), see the module's docstring. Bright floods: the whole flood of a
    # flooded, not arid scene only a little darker than its land (wind-roughened water, flooded
    # grass and crops): P(scene), VH and VV contrast to the land (dB), P(the river too)
    "bright_flood": (0.0, (1.5, 8.0), (0.0, 6.0), 1.0),
    # even land, mostly one class: P(scene), the factor on the parcel and texture spread
    "even_land": (0.0, (0.1, 0.5)),
    # hilly scenes and how steep (shadow and layover grow with it)
    "hilly": (0.35, (4.0, 12.0)),
    "shadow_db": (-24.0, -30.0),
    "foreslope_db": 5.0,
    "noise_floor_db": (-28.0, -22.0),  # IW NESZ per scene and polarisation (before removal)
    "noise_removal": (0.9, (0.5, 1.0)),  # P(thermal noise removed), fraction of NESZ removed
    "resolution_px": 0.8,  # sd (px) of the GRD impulse response (20 x 22 m) on 10 m pixels
    "enl": 4.4,
    "s2": {
        "crop": (900, 850, 700, 2900, 1900),
        "grass": (950, 900, 800, 2500, 2100),
        "forest": (800, 700, 500, 2600, 1400),
        "bare": (1250, 1350, 1550, 2200, 2900),
        "wet_soil": (1050, 1050, 1100, 1700, 1900),
        "urban": (1500, 1500, 1600, 2000, 2500),
        "flooded_vegetation": (850, 800, 600, 2100, 1100),
        "emergent_vegetation": (900, 850, 650, 1600, 1000),  # half water, half crop
        "water": (1000, 850, 600, 300, 150),
        "turbid_water": (1400, 1450, 1500, 1100, 250),  # sediment-laden flood water
        "wet_fringe": (950, 950, 1000, 1500, 1250),  # just-drained, moist soil
        "cloud": (6000, 5900, 5900, 6200, 4200),
    },
    "s2_illumination": (0.85, 1.2),  # per-scene gain: sun angle, thin haze, calibration
    "s2_vigour": (0.35, 1.1),  # per-scene scale of vegetation's NIR excess (season, stress)
    "s2_haze": (0.0, 350.0),  # extra path radiance in B02 (B03 gets 60 %, B04 30 %)
    "s2_fringe": (0.35, (0.6, 0.95)),  # P(flood changed by the S2 date), its area factor range
    "s2_cloud_mask_b02": 2500.0,  # weak labels are -1 where B02 says cloud
}
_CLASSES = ("crop", "grass", "forest", "bare", "wet_soil", "urban")


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian random field with unit standard deviation, correlated over ``sigma`` px."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-12)


def _quantile_level(field: np.ndarray, fraction: float) -> float:
    return float(np.quantile(field, min(max(fraction, 0.0), 1.0)))


def _parcels(
    rng: np.random.Generator, shape: tuple[int, int], size: float
) -> tuple[np.ndarray, int]:
    """Rotated rectangular field parcels: an id per pixel and the number of ids."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype("float32")
    angle = rng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    aspect = rng.uniform(1.0, 2.5)
    iu = np.floor((u - u.min()) / (size * aspect)).astype("int64")
    iv = np.floor((v - v.min()) / size).astype("int64")
    ids = iu * (iv.max() + 1) + iv
    return ids, int(ids.max()) + 1


def _water_fraction(rng: np.random.Generator) -> float:
    """Sen1Floods11-like spread: many chips nearly dry, a few nearly all water."""
    draw = rng.uniform()
    if draw < 0.06:
        return 0.0
    if draw < 0.18:
        return float(rng.uniform(0.0, 0.02))
    if draw < 0.27:
        return float(rng.uniform(0.7, 0.98))
    if draw < 0.31:
        return float(rng.uniform(0.98, 1.0))
    return float(rng.uniform(0.04, 0.55))


def _river(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype("float32")
    if rng.uniform() < 0.5:
        yy, xx = xx, yy
        ny, nx = nx, ny
    width = rng.uniform(3, 28)
    centre = nx * rng.uniform(0.2, 0.8)
    wobble = sum(
        rng.uniform(0.02, 0.12)
        * nx
        * np.sin(2 * np.pi * yy / ny * rng.uniform(0.5, 3.0) + rng.uniform(0, 2 * np.pi))
        for _ in range(2)
    )
    return np.abs(xx - centre - wobble) < width / 2


def _speckle(rng: np.random.Generator, shape: tuple[int, int], enl: float) -> np.ndarray:
    """Unit-mean speckle with ENL ``enl`` after a GRD-like ~2 px correlation."""
    kernel = np.array([0.15, 0.7, 0.15])
    gain = 1.0 / float((kernel**2).sum()) ** 2  # the blur raises the ENL by this factor
    raw = rng.gamma(enl / gain, gain / enl, size=shape)
    return ndimage.convolve1d(
        ndimage.convolve1d(raw, kernel, axis=0, mode="reflect"), kernel, axis=1, mode="reflect"
    )


def paired_scene(
    shape: tuple[int, int] = (512, 512),
    *,
    seed: int = 0,
    crs: str = "EPSG:32645",
    resolution: float = 10.0,
    origin: tuple[float, float] = (400_000.0, 2_800_000.0),
    cloud_cover: float | None = None,
    water_fraction: float | None = None,
    world: Mapping[str, Any] = WORLD,
) -> xr.Dataset:
    """One paired scene: ``image`` (S1 dB + S2 TOA x 10000), ``water``, ``label``, ``weak_label``.

    Parameters
    ----------
    shape : (rows, columns)
    seed : the same seed gives the same scene
    crs, resolution, origin : the grid (north-up, ``origin`` the top-left corner)
    cloud_cover : fraction of the scene under cloud; default random (mostly clear, some cloudy)
    water_fraction : fraction of the scene under flood water (0: dry, no river either);
        default random (Sen1Floods11's spread)
    world : the class statistics, default :data:`WORLD`

    Examples
    --------
    >>> from floodxr.data.synthetic import paired_scene
    >>> scene = paired_scene((128, 128), seed=3)
    >>> scene.image.band.values.tolist()
    ['vv', 'vh', 'B02', 'B03', 'B04', 'B08', 'B11']
    >>> sorted(scene.data_vars), str(scene.rio.crs)
    (['dem', 'image', 'label', 'radar_shadow', 'water', 'weak_label'], 'EPSG:32645')
    """
    ny, nx = shape
    rng = np.random.default_rng(seed)
    # bright floods and even land draw from a stream of their own (always six numbers): a scene
    # with neither is the same as in a world without them
    draws = np.random.default_rng([seed, 23]).uniform(size=6)
    p_even, (even_low, even_high) = world["even_land"]
    roughness = even_low + draws[5] * (even_high - even_low) if draws[4] < p_even else 1.0
    hilly = rng.uniform() < world["hilly"][0]
    relief = _smooth_noise(rng, shape, sigma=rng.uniform(25, 70))
    if hilly:
        relief = relief + 1.5 * np.abs(_smooth_noise(rng, shape, sigma=rng.uniform(8, 16)))
    fraction = _water_fraction(rng)
    if water_fraction is not None:
        if not 0.0 <= water_fraction <= 1.0:
            raise InvalidOptionError(f"water_fraction must be in [0, 1], got {water_fraction!r}")
        fraction = float(water_fraction)
    permanent = _river(rng, shape) if rng.uniform() < 0.6 else np.zeros(shape, bool)
    parcel_ids, n_parcels = _parcels(rng, shape, size=rng.uniform(12, 50))
    agricultural = rng.uniform() < 0.5
    if agricultural:  # flooded paddies / ponds: whole parcels under water
        permanent |= (rng.uniform(size=n_parcels) < rng.uniform(0, 0.08))[parcel_ids]
    if fraction == 0.0:  # an all-dry scene: no river, no pond either
        permanent[:] = False
    level = _quantile_level(relief, fraction)
    water = ((relief < level) | permanent) if fraction > 0.0 else np.zeros(shape, bool)
    # Sentinel-2 comes up to two days from Sentinel-1 (Sen1Floods11's event dates): in some
    # scenes the flood's fringe has receded (or not yet risen) by then
    s2_water = water
    if rng.uniform() < world["s2_fringe"][0]:
        shrink = rng.uniform(*world["s2_fringe"][1])
        s2_water = (relief < _quantile_level(relief, fraction * shrink)) | permanent

    # land cover: parcels draw a class; towns are smooth blobs
    # even land: mostly one class (a land cover of large uniform fields, pasture or forest)
    weights = rng.dirichlet(np.ones(len(_CLASSES) - 1) * (1.5 if roughness == 1.0 else 0.2))
    parcel_class = rng.choice(len(_CLASSES) - 1, size=n_parcels, p=weights)
    cover = parcel_class[parcel_ids]
    town = _smooth_noise(rng, shape, sigma=rng.uniform(6, 20))
    cover[town > _quantile_level(town, 1 - rng.uniform(0, 0.12))] = _CLASSES.index("urban")
    canopy = (cover == _CLASSES.index("forest")) | (
        _smooth_noise(rng, shape, sigma=10) > 1.6
    )  # shrubs and trees along fields
    flooded_vegetation = water & canopy & (rng.uniform() < world["flooded_canopy"])
    # shallow flood over fields: crops and grass stick out of the water (emergent vegetation)
    depth = np.where(water & ~permanent, level - relief, np.inf)
    flooded = np.isfinite(depth)
    share = rng.uniform(*world["emergent"][1])
    shallow = depth < np.quantile(depth[flooded], share) if flooded.any() else np.zeros(shape, bool)
    fields = np.isin(cover, [_CLASSES.index("crop"), _CLASSES.index("grass")])
    emerging = rng.uniform(size=n_parcels) < rng.uniform(0.2, 0.8)
    emergent = shallow & fields & emerging[parcel_ids] & (rng.uniform() < world["emergent"][0])
    emergent &= ~flooded_vegetation

    # bright floods: the whole flood a little darker than the land
    p_bright, vh_contrast, vv_contrast, p_river = world["bright_flood"]
    bright_contrast = None
    bright = np.zeros(shape, bool)
    if flooded.any() and draws[0] < p_bright:
        bright_contrast = (
            vv_contrast[0] + draws[1] * (vv_contrast[1] - vv_contrast[0]),
            vh_contrast[0] + draws[2] * (vh_contrast[1] - vh_contrast[0]),
        )
        bright = water if draws[3] < p_river else flooded

    # Sentinel-1: sigma-0 in dB class by class, then the sensor: resolution, speckle, noise
    s1_means = world["s1"]
    smooth = np.zeros(shape, bool)
    if rng.uniform() < world["smooth_lookalike"][0]:  # sand bars, tarmac, smooth dry fields
        share = rng.uniform(0.005, world["smooth_lookalike"][1])
        smooth = (rng.uniform(size=n_parcels) < share)[parcel_ids] & ~water
    arid = rng.uniform() < world["arid"][0]
    if arid:  # dry sand and smooth soil over much of the land
        share = rng.uniform(*world["arid"][1])
        smooth |= (rng.uniform(size=n_parcels) < share)[parcel_ids] & ~water
        # sand as dark as a bright flood beside it: nothing to learn from
        bright_contrast, bright = None, np.zeros(shape, bool)
    incidence = rng.uniform(*world["incidence_deg"])
    across = np.linspace(-0.5, 0.5, nx)[None, :] * rng.uniform(0, 1.0)  # deg across the scene
    theta = incidence + across
    slope = world["incidence_slope_db"]
    gamma0 = rng.uniform() < world["gamma0_probability"]
    product_db = -10 * np.log10(np.cos(np.radians(theta))) if gamma0 else 0.0
    offset = rng.normal(0, world["s1_scene_offset_db"], size=2)
    land_shift = rng.uniform(*world["arid"][2] if arid else world["s1_land_shift_db"])
    water_shift = rng.uniform(*world["water_level_db"])
    jitter = {name: rng.normal(0, world["s1_class_jitter_db"], size=2) for name in s1_means}
    parcel_db = roughness * rng.normal(0, world["s1_parcel_sd_db"], size=(n_parcels, 2))
    texture = roughness * 0.8 * _smooth_noise(rng, shape, sigma=3)
    states = world["water_wind_db"]
    state = rng.choice(len(states), p=np.array([w for w, _ in states]) / sum(w for w, _ in states))
    wind = rng.uniform(*states[state][1])
    calm_vv = s1_means["water"][0] + jitter["water"][0] + water_shift
    wind = min(wind, max(0.0, world["water_vv_max_db"] - calm_vv))
    gusts = np.clip(1 + 0.5 * _smooth_noise(rng, shape, sigma=rng.uniform(20, 60)), 0, None)
    vh_fraction = rng.uniform(*world["water_wind_vh_fraction"])
    urban = cover == _CLASSES.index("urban")
    targets = urban & (rng.uniform(size=shape) < 0.03)
    target_db = rng.uniform(8, 20, size=shape)
    low, high = world["noise_floor_db"]
    nesz = rng.uniform(low, high, size=2)
    removed = rng.uniform() < world["noise_removal"][0]
    removal = rng.uniform(*world["noise_removal"][1]) if removed else 0.0
    scallop = (
        0.7
        * np.sin(2 * np.pi * (np.arange(nx) / nx * rng.uniform(0.1, 1.0) + rng.uniform()))[None, :]
    )
    # the DEM (m): relief scaled so that the world's shadow is geometric radar shadow of an
    # east-looking (ascending) pass at the scene's incidence, slopes steeper than 90 - incidence
    metres = 5.0 * resolution
    radar_shadow = np.zeros(shape, bool)
    if hilly:
        steep = rng.uniform(*world["hilly"][1])
        terrain = np.gradient(relief * steep, axis=1)
        limit = np.quantile(np.abs(terrain), 0.93)
        shadow = (terrain < -limit) & ~water
        foreslope = (terrain > np.quantile(np.abs(terrain), 0.9)) & ~water
        metres = steep * resolution * np.tan(np.deg2rad(90.0 - incidence)) / limit
        radar_shadow = shadow
    # standing flood water is flat, at its level
    dem = np.where(water & (relief < level), level, relief) * metres
    s1 = np.empty((2, ny, nx), "float64")
    for p in range(2):
        db = np.zeros(shape)
        for k, name in enumerate(_CLASSES):
            db[cover == k] = s1_means[name][p] + jitter[name][p]
        db[smooth] = s1_means["smooth"][p] + jitter["smooth"][p]
        db += parcel_db[parcel_ids, p] + texture + land_shift
        rise = wind * gusts[water] * (1.0 if p == 0 else vh_fraction)
        db[water] = (
            s1_means["water"][p] + jitter["water"][p] + water_shift + rise + 0.6 * texture[water]
        )
        if bright_contrast is not None:  # the flood a little darker than the scene's land
            land = db[~water & ~smooth]
            reference = (
                float(np.median(land))
                if land.size >= 100
                else s1_means["crop"][p] + jitter["crop"][p] + land_shift
            )
            db[bright] = reference - bright_contrast[p] + 0.6 * texture[bright]
        for name, where in (
            ("flooded_vegetation", flooded_vegetation),
            ("emergent_vegetation", emergent),
        ):
            db[where] = s1_means[name][p] + jitter[name][p] + land_shift + texture[where]
        if hilly:
            db[shadow] = rng.uniform(*sorted(world["shadow_db"]))
            db[foreslope] += world["foreslope_db"]
        db += np.where(water & ~bright, slope["water"], slope["land"]) * (theta - 38.0)
        db += offset[p] + product_db
        power = ndimage.gaussian_filter(10 ** (db / 10), world["resolution_px"])
        power *= _speckle(rng, shape, world["enl"])
        power[targets] *= 10 ** (target_db[targets] / 10 - (0 if p == 0 else 0.6))
        noise = 10 ** ((nesz[p] + scallop) / 10)
        power += noise * (_speckle(rng, shape, world["enl"]) - removal)
        s1[p] = 10 * np.log10(np.maximum(power, 1e-6))  # GRD floor: -60 dB

    # Sentinel-2 TOA reflectance x 10000
    spectra = world["s2"]
    turbidity = rng.uniform(0, 1)
    illumination = rng.uniform(*world["s2_illumination"])
    vigour = rng.uniform(*world["s2_vigour"])
    s2 = np.empty((len(S2_WORLD_BANDS), ny, nx), "float64")
    for b in range(len(S2_WORLD_BANDS)):
        band = np.zeros(shape)
        for k, name in enumerate(_CLASSES):
            value = spectra[name][b]
            if b == S2_WORLD_BANDS.index("B08") and name in ("crop", "grass", "forest"):
                red = spectra[name][S2_WORLD_BANDS.index("B04")]
                value = red + vigour * (value - red)  # a flood season's weaker NIR plateau
            band[cover == k] = value
        band *= 1 + 0.12 * rng.standard_normal(n_parcels)[parcel_ids]
        water_refl = (1 - turbidity) * spectra["water"][b] + turbidity * spectra["turbid_water"][b]
        band[s2_water] = water_refl * (1 + 0.1 * _smooth_noise(rng, shape, 15)[s2_water])
        band[water & ~s2_water] = spectra["wet_fringe"][b]
        band[flooded_vegetation] = spectra["flooded_vegetation"][b]
        band[emergent] = spectra["emergent_vegetation"][b]
        s2[b] = band * illumination * (1 + 0.03 * rng.standard_normal(shape))
    haze = rng.uniform(*world["s2_haze"])
    s2[:3] += haze * np.array([1.0, 0.6, 0.3])[:, None, None]

    cover_fraction = (
        cloud_cover
        if cloud_cover is not None
        else (0.0 if rng.uniform() < 0.55 else float(rng.uniform(0.02, 0.5)))
    )
    thick = np.zeros(shape, bool)
    if cover_fraction > 0:
        clouds = _smooth_noise(rng, shape, sigma=rng.uniform(10, 30))
        level = _quantile_level(clouds, 1 - cover_fraction)
        alpha = np.clip((clouds - level) / 0.6, 0, 1)
        shift = rng.integers(8, 40, size=2) * rng.choice((-1, 1), size=2)
        shadow = np.roll(alpha, tuple(shift), axis=(0, 1)) * (1 - alpha)
        cloud = np.asarray(spectra["cloud"], "float64")[:, None, None]
        s2 = s2 * (1 - alpha) + cloud * alpha * rng.uniform(0.8, 1.2)
        s2 *= 1 - 0.6 * shadow
        thick = alpha > 0.8

    truth = water.astype("int8")
    label = np.where(thick, -1, truth).astype("int8")
    box = north_up(shape, origin, resolution, crs)
    s2 = np.clip(s2, 1, 10000)
    bands = ("vv", "vh") + S2_WORLD_BANDS
    s2_da = xr.DataArray(s2, dims=("band", "y", "x"), coords={"band": list(S2_WORLD_BANDS)})
    weak = weak_labels(s2_da).values
    weak[s2[0] > world["s2_cloud_mask_b02"]] = -1  # a brightness cloud mask; thin edges pass
    scene = xr.Dataset(
        {
            "image": (
                ("band", "y", "x"),
                np.concatenate([s1, s2]).astype("float32"),
                {"long_name": "synthetic Sentinel-1 (dB) and Sentinel-2 (TOA x 10000)"},
            ),
            "water": (("y", "x"), truth, {"long_name": "true water"}),
            "label": (
                ("y", "x"),
                label,
                {"long_name": "hand label (-1 under thick cloud)", "flag_values": [-1, 0, 1]},
            ),
            "weak_label": (
                ("y", "x"),
                weak,
                {"long_name": "weak label (S2 MNDWI/NDVI)", "flag_values": [-1, 0, 1]},
            ),
            "dem": (("y", "x"), dem.astype("float32"), {"units": "m", "long_name": "elevation"}),
            "radar_shadow": (("y", "x"), radar_shadow, {"long_name": "radar shadow (true)"}),
        },
        coords={"band": list(bands), **coords(box)},
        attrs={
            "floodxr_world_seed": seed,
            "cloud_cover": cover_fraction,
            "hilly": int(hilly),
            "arid": int(arid),
            "wind_db": wind,
            "bright_flood_vh_db": bright_contrast[1] if bright_contrast else 0.0,  # 0: none
            "land_roughness": roughness,  # 1: the world's usual parcel and texture spread
            "turbidity": turbidity,
            "vegetation_vigour": vigour,
            "incidence_deg": incidence,
            "orbit_state": "ascending",  # the radar looks east (+x): shadow and the DEM agree
            "product": "gamma0" if gamma0 else "sigma0",
            "noise_removal": removal,
        },
    )
    return scene.rio.write_crs(crs).rio.write_transform(box.affine)


def paired_scenes(
    n: int, *, seed: int = 0, shape: tuple[int, int] = (512, 512), **kwargs: Any
) -> list[xr.Dataset]:
    """``n`` independent scenes with seeds ``seed * 100003 + k`` (disjoint across seeds < 100003).

    Examples
    --------
    >>> from floodxr.data.synthetic import paired_scenes
    >>> [s.attrs["floodxr_world_seed"] for s in paired_scenes(2, seed=1, shape=(64, 64))]
    [100003, 100004]
    """
    return [paired_scene(shape, seed=seed * 100003 + k, **kwargs) for k in range(n)]


def write_world(
    path: str | Path,
    n: int,
    *,
    seed: int = 0,
    shape: tuple[int, int] = (512, 512),
    chunks: int = 256,
    overwrite: bool = False,
) -> Path:
    """Write ``n`` scenes as one Zarr cube ``(time, band, y, x)`` like a paired STAC cube.

    The store holds ``image``, ``label``, ``weak_label`` and ``water`` with a ``time``
    dimension (one synthetic acquisition per step, all on one grid) and chunks of ``chunks`` px.

    Examples
    --------
    >>> import tempfile, xarray as xr
    >>> from floodxr.data.synthetic import write_world
    >>> store = write_world(tempfile.mkdtemp() + "/world.zarr", 2, shape=(64, 64), chunks=32)
    >>> cube = xr.open_zarr(store, consolidated=False)
    >>> cube.image.dims, cube.image.chunks[-1]
    (('time', 'band', 'y', 'x'), (32, 32))
    """
    from floodxr.writers import to_zarr

    if n < 1:
        raise InvalidOptionError(f"n must be at least 1, got {n!r}")
    scenes = paired_scenes(n, seed=seed, shape=shape)
    times = np.datetime64("2020-01-01") + np.arange(n) * np.timedelta64(6, "D")
    cube = xr.concat(
        [s.drop_vars("spatial_ref").assign_coords(y=scenes[0].y, x=scenes[0].x) for s in scenes],
        dim=xr.DataArray(times, dims="time", name="time"),
        combine_attrs="drop",
    )
    cube = cube.assign_coords(band=cube["band"].astype(object))  # zarr 3 has no fixed-width str
    cube = cube.rio.write_crs(scenes[0].rio.crs).rio.write_transform(transform(scenes[0]))
    cube = cube.chunk({"time": 1, "band": -1, "y": chunks, "x": chunks})
    return to_zarr(cube, path, overwrite=overwrite)
