"""TrainConfig.compile: the "auto" rule, and the eager fallback where torch.compile fails."""
import pytest
import torch

import workbench as wb
from workbench.errors import BadParameterError
from workbench.learners import base, build
from workbench.training.config import AUTO_COMPILE_BUDGET_S, AUTO_COMPILE_STEPS, TrainConfig
from workbench.training.trainer import Trainer
from workbench.training.prepare import data_info, prepare


@pytest.fixture(scope="module")
def vdp():
    return wb.simulate("van_der_pol", n=8, t_end=3.0, dt=0.1, seed=0)


def train(ds, learner="node", **config):
    """The history of a short run through the Trainer, as wb.fit drives it, and the trainer."""
    info = data_info(ds)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = build(learner, info, {"hidden": 16})
        trainer = Trainer(module, prepare(ds, torch.device("cpu")),
                          TrainConfig(epochs=2, steps_per_epoch=5, batch_size=16, window=6, **config),
                          module.objective(info.has_derivative))
        trainer.start()
        while not trainer.finished():
            trainer.epoch_step()
    return [h["val_loss"] for h in trainer.history], trainer


def test_auto_compiles_only_runs_long_enough_to_pay_back():
    assert not TrainConfig().compiles  # 40 epochs x 25 steps: the default run stays eager
    assert not TrainConfig(epochs=8, steps_per_epoch=25).compiles
    assert TrainConfig(epochs=AUTO_COMPILE_STEPS // 25, steps_per_epoch=25).compiles
    assert not TrainConfig(time_budget=AUTO_COMPILE_BUDGET_S / 2).compiles
    assert TrainConfig(time_budget=AUTO_COMPILE_BUDGET_S).compiles
    assert TrainConfig(compile=True).compiles and not TrainConfig(epochs=10 ** 6, compile=False).compiles
    with pytest.raises(BadParameterError, match="compile"):
        TrainConfig(compile="yes")


def test_compile_is_a_speed_setting_left_out_of_the_run_description():
    assert "compile" not in TrainConfig(compile=True).to_json()
    assert TrainConfig.from_json(TrainConfig(compile=True).to_json()) == TrainConfig()


@pytest.mark.parametrize("failure", ["at compile", "at first call"])
@pytest.mark.parametrize("learner", ["node", "rknet"])
def test_a_failing_compiler_falls_back_to_eager_with_the_same_losses(vdp, monkeypatch, failure, learner):
    eager, trainer = train(vdp, learner, compile=False)
    assert not trainer.compiled

    def broken(fn, **options):
        if failure == "at compile":
            raise RuntimeError("no C compiler")

        def call(*args):
            raise RuntimeError("inductor: unsupported op")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(base, "_compiled", {})
    with pytest.warns(RuntimeWarning, match="training eagerly"):
        fallback, trainer = train(vdp, learner, compile=True)
    assert not trainer.compiled
    assert fallback == eager
    assert eager[-1] < eager[0]


# resnet: one evaluation per step runs faster eagerly; hnn: its field is a gradient, and compiled
# autograd does not differentiate twice
@pytest.mark.parametrize("learner, system", [("nsde", "van_der_pol"), ("resnet", "van_der_pol"), ("hnn", "pendulum")])
def test_compile_true_on_a_learner_without_a_compilable_step_warns_and_trains(learner, system):
    ds = wb.simulate(system, n=8, t_end=3.0, dt=0.1, seed=0)
    with pytest.warns(RuntimeWarning, match="trains eagerly"):
        losses, trainer = train(ds, learner=learner, compile=True)
    assert not trainer.compiled and losses[-1] < losses[0]


@pytest.mark.slow  # compiles with inductor: tens of seconds with an empty cache
@pytest.mark.parametrize("learner", ["node", "rknet"])
def test_compiled_training_matches_eager(vdp, learner):
    eager, _ = train(vdp, learner, compile=False)
    compiled, trainer = train(vdp, learner, compile=True)
    assert trainer.compiled and trainer.compile_seconds > 0
    torch.testing.assert_close(torch.tensor(compiled), torch.tensor(eager), rtol=1e-4, atol=0)


def test_mixed_precision_trains_in_bfloat16_products_with_float32_weights(vdp):
    full, _ = train(vdp)
    mixed, trainer = train(vdp, precision="mixed")
    assert all(p.dtype == torch.float32 for p in trainer.module.parameters())
    assert full[0] == mixed[0]  # the same start, validated in float32 both times
    # bfloat16 products change the training steps a little, not the course of the run
    assert mixed[-1] != full[-1] and abs(mixed[-1] - full[-1]) < 0.1 * full[-1]


def test_fit_passes_compile_through_to_the_config(vdp):
    with pytest.raises(BadParameterError, match="compile"):
        wb.fit(vdp, "node", epochs=1, compile="sometimes")
