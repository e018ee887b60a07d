"""A user's own learner, registered from the user's file, works in fit, predict, evaluate and compatibility."""
import pytest
import torch

import workbench as wb
from workbench.learners import Capabilities, Learner


class LinearFlow(Learner):  # the ten-line closed-form learner a user writes: z_{k+1} = [z_k, 1] A by least squares
    name = "linear_flow_test"
    supports = Capabilities(training="closed_form", irregular=False)

    def fit_closed_form(self, train, val, times):
        z = torch.cat([train.z.double(), torch.ones_like(train.z[..., :1]).double()], -1)
        self.register_buffer("a", torch.linalg.lstsq(z[:, :-1].flatten(0, 1), z[:, 1:, :-1].flatten(0, 1)).solution)
        return {"val_loss": 0.0}

    def rollout(self, z0, t, n_samples=1, generator=None, inputs=None, context=None):
        out = [z0.double()]
        for _ in range(len(t) - 1):
            out.append(torch.cat([out[-1], torch.ones_like(out[-1][:, :1])], -1) @ self.a)
        return torch.stack(out, 1).to(z0.dtype)[None].expand(n_samples, -1, -1, -1)


def test_a_registered_learner_is_usable_everywhere_by_name():
    wb.register_learner(LinearFlow)
    assert "linear_flow_test" in wb.learners()
    ds = wb.simulate("harmonic_oscillator", n=16, t_end=5.0, dt=0.05, seed=0)
    model = wb.fit(ds, "linear_flow_test", precision="float64")
    scores = wb.evaluate(model, ds)
    assert float(scores["rmse"].max()) < 1e-3  # a linear oscillator is exactly a linear map on its grid
    verdicts = wb.learners.__module__ and __import__("workbench.learners", fromlist=["compatibility"]).compatibility(ds)
    assert verdicts["linear_flow_test"] is None
    masked = wb.simulate("harmonic_oscillator", n=16, t_end=5.0, dt=0.05, seed=0, missing=0.2)
    with pytest.raises(wb.errors.UnsupportedError, match="regularly sampled"):
        wb.fit(masked, "linear_flow_test")


def test_malformed_learners_are_refused_at_registration():
    class NoRollout(Learner):
        name = "no_rollout_test"
        supports = Capabilities(training="closed_form")

        def fit_closed_form(self, train, val, times):
            return {}

    with pytest.raises(wb.errors.BadParameterError, match="does not implement"):
        wb.register_learner(NoRollout)
    with pytest.raises(wb.errors.BadParameterError, match="already registered"):
        wb.register_learner(type("Other", (LinearFlow,), {"name": "node"}))
    with pytest.raises(wb.errors.BadParameterError, match="Learner subclass"):
        wb.register_learner(object)
