"""The wheel carries what `workbench app` and `workbench demo` need; the full non-editable install is
smoke-tested by `.ci/install_smoke` (run in CI)."""
import subprocess
import sys
import zipfile
from pathlib import Path

from workbench.demo import DEMOS, demo_paths, shipped

ROOT = Path(__file__).resolve().parent.parent


def test_a_source_checkout_finds_the_app_and_demo_files_at_the_top_level():
    assert shipped("app") == ROOT / "app" and (shipped("app") / "streamlit_app.py").is_file()
    for kind in DEMOS:
        data, model = demo_paths(kind)
        assert data.parent == ROOT / "data" and data.is_file() and (model / "config.json").is_file()


def test_the_wheel_ships_the_app_and_the_demo_inside_the_package(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel, = tmp_path.glob("dynamics_workbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ROOT.joinpath("app").rglob("*.py"):
        assert f"workbench/_app/{path.relative_to(ROOT / 'app').as_posix()}" in names
    for kind in DEMOS:
        data, model = demo_paths(kind)
        assert f"workbench/_data/{data.name}" in names
        assert f"workbench/_data/{model.name}/model.safetensors" in names
    assert not [n for n in names if "screenshots" in n or "__pycache__" in n]


def test_the_shipped_sde_demo_is_reproducible_and_mostly_held_out():
    import numpy as np
    import workbench as wb
    from workbench.demo import demo_dataset

    data, _ = demo_paths("sde")
    shipped_ds = wb.load(data)
    assert int((shipped_ds["split"] == "test").sum()) >= 100     # oracle-relative scores with a small error
    rebuilt = demo_dataset(DEMOS["sde"], progress=False)
    np.testing.assert_array_equal(rebuilt["state"].values, shipped_ds["state"].values)
    np.testing.assert_array_equal(rebuilt["split"].values, shipped_ds["split"].values)
