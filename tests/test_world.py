"""The synthetic world covers what real Sentinel-1 flood scenes show (floodxr.data.synthetic)."""

import importlib
import sys

import numpy as np
import pytest

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
