"""The exception family: separate problem and fix fields, one-line text with both."""
import pickle

import pytest

import workbench as wb


def test_problem_and_fix_are_separate_fields():
    err = wb.WorkbenchError("no system 'q'", fix="pick one of wb.systems()")
    assert (err.problem, err.fix) == ("no system 'q'", "pick one of wb.systems()")
    assert str(err) == "no system 'q'; pick one of wb.systems()"


@pytest.mark.parametrize("message, problem, fix", [
    ("the system's drift failed; pass params=", "the system's drift failed", "pass params="),
    ("unknown 'a; b'; use c", "unknown 'a; b'", "use c"),
    ("x is bad (a; b); pass y=2", "x is bad (a; b)", "pass y=2"),
    ("no fix given", "no fix given", ""),
])
def test_older_messages_split_at_the_first_top_level_semicolon(message, problem, fix):
    err = wb.errors.BadParameterError(message)
    assert (err.problem, err.fix) == (problem, fix)
    assert str(err) == message


def test_fields_survive_and_errors_pickle_for_dask_workers():
    err = wb.errors.DivergenceError("blew up at t=3", fix="lower the step", trajectory=4)
    assert err.trajectory == 4
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is type(err) and (again.problem, again.fix, again.trajectory) == (err.problem, err.fix, 4)


def test_range_checks_and_csv_cells_give_their_fix_apart(tmp_path):
    with pytest.raises(wb.errors.BadParameterError) as caught:
        wb.simulate("lorenz63", n=0)
    assert caught.value.fix.startswith("pass an integer in [1,")
    bad = tmp_path / "bad.csv"
    bad.write_text("time,x\n0,1\n1,abc\n")
    with pytest.raises(wb.errors.DatasetError) as caught:
        wb.from_csv(bad)
    assert "'abc' is not a number" in caught.value.problem and "missing=" in caught.value.fix
