"""The walk of a time-split series through fit: each step once, no merge-and-cut; fit's two call forms agree."""
import sys
import warnings

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.data import embedding, series, splits, transforms
from workbench.data.realdata import load_real
from workbench.data.series import SeriesRecipe
from workbench.errors import BadParameterError, DatasetError
from workbench.training import TrainConfig

# every step a time-split series can pass on its way from fit to the learner's loss
STEPS = [(splits, "merge_segments"), (splits, "split_at"), (transforms, "transform_dataset"),
         (transforms, "difference_dataset"), (series, "interpolate_gaps"), (embedding, "embed_series"),
         (embedding, "embed_dataset"), (series, "training_layout"), (series, "prepare_series")]


def _count_calls(monkeypatch):
    """Wrap each step, wherever a workbench module holds it by name, in a call counter."""
    calls = {name: 0 for _, name in STEPS}
    for owner, name in STEPS:
        original = getattr(owner, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        for module in [m for n, m in sys.modules.items() if n.startswith("workbench") and m is not None]:
            if getattr(module, name, None) is original:
                monkeypatch.setattr(module, name, counted)
    return calls


@pytest.fixture(scope="module")
def co2():
    return wb.split_time(load_real("co2"), val=0.1, test=0.15)  # weekly, 59 empty weeks


def test_a_split_series_passes_each_step_once_and_is_never_cut_again(co2, monkeypatch):
    calls = _count_calls(monkeypatch)
    model = wb.fit(co2, "nvar", transform={"co2": "log"}, fill_gaps=True, difference=True, embed=3, lag=2,
                   delays=1, degree=1)
    assert calls == {"merge_segments": 1, "split_at": 0, "transform_dataset": 1, "difference_dataset": 1,
                     "interpolate_gaps": 1, "embed_series": 1, "embed_dataset": 0, "training_layout": 1,
                     "prepare_series": 1}
    recipe = model.meta["series"]
    assert (recipe["layout"], recipe["embed"], recipe["lag"], recipe["difference"]) == ("chunks", 3, 2, True)
    assert model.variables == ["co2", "co2_lag2", "co2_lag4"]


def test_an_irregular_split_series_is_cut_into_pieces_once(monkeypatch):
    t = np.cumsum(np.random.default_rng(4).uniform(0.5, 1.5, 200))
    ds = wb.split_time(wb.from_numpy(np.sin(t / 5.0)[None, :, None], t, ["x"]), val=0.1, test=0.2)
    calls = _count_calls(monkeypatch)
    model = wb.fit(ds, "node", embed=2, epochs=1, steps_per_epoch=2)
    assert calls["merge_segments"] == 1 and calls["split_at"] == 1 and calls["embed_series"] == 1
    assert model.meta["series"]["layout"] == "pieces"


def test_keywords_and_objects_give_the_same_model(co2):
    ds = co2.isel(time=slice(0, 600))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flat = wb.fit(ds, "node", embed=2, lag=1, transform="log", fill_gaps=True, epochs=2, steps_per_epoch=3,
                      seed=3, hidden=8)
        objects = wb.fit(ds, "node", train=TrainConfig(epochs=2, steps_per_epoch=3, seed=3),
                         series=SeriesRecipe(embed=2, lag=1, transform="log", fill_gaps=True), hidden=8)
    a, b = flat.learner.state_dict(), objects.learner.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert flat.meta["series"] == objects.meta["series"] and flat.meta["train_config"] == objects.meta["train_config"]
    assert [h["val_loss"] for h in flat.history] == [h["val_loss"] for h in objects.history]


def test_a_field_given_both_ways_is_refused_naming_both(co2):
    with pytest.raises(BadParameterError, match=r"embed=3 and series=SeriesRecipe\(\.\.\.\) both set series\.embed"):
        wb.fit(co2, "nvar", series=SeriesRecipe(embed=2), embed=3)
    with pytest.raises(BadParameterError, match=r"seed=1 and train=TrainConfig\(\.\.\.\) both set train\.seed"):
        wb.fit(co2, "node", train=TrainConfig(epochs=1), seed=1)
    with pytest.raises(BadParameterError, match="series= must be a SeriesRecipe"):
        wb.fit(co2, "nvar", series={"embed": 2})


def test_the_recipe_is_checked_at_construction_and_inverts_its_forward():
    with pytest.raises(BadParameterError, match=r"embed must be an integer in \[1, 100\]"):
        SeriesRecipe(embed=0)
    with pytest.raises(BadParameterError, match="difference='yes' is not True or False"):
        SeriesRecipe(difference="yes")
    with pytest.raises(BadParameterError, match="unknown transform 'cube' for 'level'"):
        SeriesRecipe(transform={"level": "cube"})
    x = np.exp(0.01 * np.arange(40.0) + 0.1 * np.sin(np.arange(40.0)))
    ds = wb.from_numpy(x[None, :, None], np.arange(40.0), ["level"])
    recipe = SeriesRecipe(transform="log", difference=True, embed=3, lag=2).bind(ds)
    assert recipe.warmup == 5 and recipe.learner_variables == ["level", "level_lag2", "level_lag4"]
    seen = recipe.forward(ds)["state"].values[0]                       # (T, 3): increments of log(level)
    np.testing.assert_allclose(seen[5:, 0], np.diff(np.log(x))[4:], rtol=1e-12)
    np.testing.assert_allclose(seen[5:, 2], np.diff(np.log(x))[:-4], rtol=1e-12)
    # the increments after sample 9, summed from its value, give the levels back
    back = recipe.inverse(seen[None, 10:], last=x[None, 9:10])[0]
    np.testing.assert_allclose(back[:, 0], x[10:], rtol=1e-12)
    with pytest.raises(BadParameterError, match="unknown transform 'cube' for 'level'"):
        SeriesRecipe(transform="cube").bind(ds)  # one name for every variable: checked per variable
    with pytest.raises(DatasetError, match="the variables"):
        recipe.forward(ds.assign_coords(variable=["other"]))


def test_old_model_recipes_read_back_unchanged(co2):
    stored = {"transform": {"co2": "log1p"}, "difference": False, "fill_gaps": True, "embed": 2, "lag": 1,
              "variables": ["co2"], "units": ["ppm"], "step": 7.0, "layout": "chunks",
              "time_units": "days since 1958-03-29", "time_split": {"val_start": 1.0, "test_start": 2.0},
              "drivers": None}
    recipe = SeriesRecipe.from_json(stored)
    assert recipe.to_json() == stored
    assert series.check_recipe(stored, ["co2", "co2_lag1"]) == stored
