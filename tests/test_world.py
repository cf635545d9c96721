"""The synthetic world covers what real Sentinel-1 flood scenes show (floodxr.data.synthetic)."""

import importlib
import sys

import numpy as np
import pytest
from scipy import ndimage

import floodxr
from floodxr.data.synthetic import WORLD, paired_scene


@pytest.fixture(scope="module")
def scenes():
    return [paired_scene((192, 192), seed=700 + k) for k in range(48)]


def _medians(scene, band, water):
    values = scene.image.sel(band=band).values[(scene.water.values == 1) == water]
    return float(np.median(values)) if values.size > 200 else None


def test_water_spans_calm_to_wind_roughened(scenes):
    # real flood water's VV medians span about 10 dB (Sen1Floods11's dev chips: -19 to -11)
    vv = [m for s in scenes if (m := _medians(s, "vv", True)) is not None]
    vh = [m for s in scenes if (m := _medians(s, "vh", True)) is not None]
    assert max(vv) - min(vv) > 10 and max(vh) - min(vh) > 6
    land = [m for s in scenes if (m := _medians(s, "vh", False)) is not None]
    # some scenes have water brighter than other scenes' land: no absolute level separates them
    assert max(vh) > min(land)


def test_scene_parameters_are_drawn_widely(scenes):
    fractions = [float(s.water.mean()) for s in scenes]
    assert min(fractions) == 0.0 and max(fractions) > 0.9  # all-dry and almost all-water scenes
    assert {s.attrs["product"] for s in scenes} == {"sigma0", "gamma0"}
    incidence = [s.attrs["incidence_deg"] for s in scenes]
    low, high = WORLD["incidence_deg"]
    assert low <= min(incidence) and max(incidence) <= high
    assert max(incidence) - min(incidence) > 8
    removal = [s.attrs["noise_removal"] for s in scenes]
    assert 0.0 in removal and max(removal) > 0.5  # thermal noise removed in most, not all


def test_calm_water_sits_on_the_noise_floor_without_noise_removal():
    # no removal: the VH of calm water cannot fall far below the scene's NESZ (>= -28 dB)
    for seed in range(200):
        scene = paired_scene((128, 128), seed=seed)
        calm = scene.attrs["noise_removal"] == 0 and scene.attrs["wind_db"] < 1
        if calm and scene.water.mean() > 0.2:
            vh = scene.image.sel(band="vh").values[scene.water.values == 1]
            assert np.median(vh) > WORLD["noise_floor_db"][0] - 3
            return
    pytest.fail("no calm scene without noise removal among 200 seeds")


def test_the_same_seed_gives_the_same_scene():
    a, b = paired_scene((96, 96), seed=5), paired_scene((96, 96), seed=5)
    assert a.identical(b)


def test_the_old_module_name_still_works_and_says_where_it_went():
    sys.modules.pop("floodxr.testing.world", None)
    with pytest.warns(FutureWarning, match="floodxr.data.synthetic"):
        old = importlib.import_module("floodxr.testing.world")
    assert old.paired_scene is paired_scene and "write_world" in old.__all__


def test_scene_levels_span_what_sentinel1_meets_not_what_the_dev_chips_show():
    """Issue 23's ranges: water VV from calm (-26 dB) to wind-roughened (-8 dB), water VH to -15,
    land VH from -24 to -8 dB, a water-land VH contrast from 1.5 to 15 dB (scene medians)."""
    water_vv, water_vh, land_vh, contrast = [], [], [], []
    for k in range(160):
        scene = paired_scene((128, 128), seed=50_000 + k)
        w = scene.water.values == 1
        if 300 < w.sum() < w.size - 300:
            vv, vh = (scene.image.sel(band=b).values for b in ("vv", "vh"))
            water_vv.append(np.median(vv[w]))
            water_vh.append(np.median(vh[w]))
            land_vh.append(np.median(vh[~w]))
            contrast.append(land_vh[-1] - water_vh[-1])
    assert min(water_vv) <= -24 and max(water_vv) >= -9
    assert min(water_vh) <= -30 and max(water_vh) >= -16
    assert min(land_vh) <= -23 and max(land_vh) >= -10
    assert min(contrast) <= 1.5 and max(contrast) >= 15


def test_arid_scenes_and_chosen_water_fractions():
    dry = [paired_scene((96, 96), seed=k, water_fraction=0.0) for k in range(30)]
    assert all(int(s.water.sum()) == 0 for s in dry)  # no river, no pond either
    arid = [s for s in dry if s.attrs["arid"]]
    assert arid  # dry sand as dark as calm water in some of them
    assert min(float(s.image.sel(band="vh").median()) for s in arid) < -20
    flooded = paired_scene((96, 96), seed=1, water_fraction=1.0)
    assert float(flooded.water.mean()) > 0.99
    with pytest.raises(floodxr.errors.InvalidOptionError, match="water_fraction"):
        paired_scene((32, 32), water_fraction=1.5)


# the two optional draws (off in WORLD) turned on, as a study would
BRIGHT = dict(WORLD) | {"bright_flood": (0.2, *WORLD["bright_flood"][1:])}
EVEN = dict(WORLD) | {"even_land": (0.3, WORLD["even_land"][1])}


def test_the_optional_draws_are_off_in_the_shipped_world():
    assert WORLD["bright_flood"][0] == 0.0 and WORLD["even_land"][0] == 0.0
    scene = paired_scene((64, 64), seed=11)
    assert scene.attrs["bright_flood_vh_db"] == 0.0 and scene.attrs["land_roughness"] == 1.0


def test_bright_floods_are_a_little_darker_than_the_land_and_change_nothing_else():
    """With bright floods on, a fifth of the flooded scenes get a flood only 1.5-8 dB darker than
    the land in VH; the same seed without them gives the same labels, S2 and dry land, and a
    darker flood; every other scene is unchanged."""
    bright = []
    for k in range(80):
        scene = paired_scene((128, 128), seed=60_000 + k, world=BRIGHT)
        plain = paired_scene((128, 128), seed=60_000 + k)
        if not scene.attrs["bright_flood_vh_db"]:
            assert scene.drop_attrs().identical(plain.drop_attrs())
            continue
        w = scene.water.values == 1
        assert (plain.water.values == scene.water.values).all()
        assert (plain.label.values == scene.label.values).all()
        assert plain.image.sel(band="B08").identical(scene.image.sel(band="B08"))
        far = ndimage.distance_transform_edt(~w) > 4.5  # beyond the 7 x 7 px resolution blur
        vh, plain_vh = scene.image.sel(band="vh").values, plain.image.sel(band="vh").values
        assert np.array_equal(vh[far], plain_vh[far])
        if w.sum() > 300 and (~w).sum() > 300:
            contrast = np.median(vh[~w]) - np.median(vh[w])
            bright.append((contrast, np.median(plain_vh[~w]) - np.median(plain_vh[w])))
    assert len(bright) >= 5
    # the flood near the land's level and brighter than the same flood without the draw
    # (measured: median contrast 3.5 dB, median lift 4.6 dB)
    assert np.median([c for c, _ in bright]) < 6
    lift = [p - c for c, p in bright]
    assert np.median(lift) > 2 and max(lift) > 5


def _land_spread(scene):
    """10th-90th percentile range (dB) of VH averaged over 9 x 9 px: the land's structure, not
    its speckle."""
    power = 10 ** (scene.image.sel(band="vh").values / 10)
    low, high = np.percentile(10 * np.log10(ndimage.uniform_filter(power, 9)), [10, 90])
    return high - low


def test_even_land_varies_less_than_the_same_scenes_in_the_usual_world():
    even, plain = [], []
    for k in range(40):
        scene = paired_scene((128, 128), seed=61_000 + k, world=EVEN, water_fraction=0.0)
        if scene.attrs["land_roughness"] < 1:
            low, high = WORLD["even_land"][1]
            assert low <= scene.attrs["land_roughness"] <= high
            same = paired_scene((128, 128), seed=61_000 + k, water_fraction=0.0)
            assert same.attrs["land_roughness"] == 1.0
            even.append(_land_spread(scene))
            plain.append(_land_spread(same))
    assert len(even) >= 5
    assert np.median(even) < np.median(plain) - 1.5  # measured: 5.3 against 8.3 dB
