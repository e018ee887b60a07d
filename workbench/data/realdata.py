"""The small real, public-domain series shipped in ``data/real/`` (provenance in ``data/README.md``).

Each entry says how to import its CSV (the arguments of :func:`workbench.from_csv`), its natural
cycle (used as the "one characteristic period" of the benchmark) and a one-line description, so
the app's dataset list, the README walkthrough and ``benchmarks/bench_real.py`` load them alike.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import xarray as xr

from ..demo import shipped
from ..errors import UnknownNameError
from .imports import from_csv

DATA_DIR: Path = shipped("data") / "real"  # top-level data/ in a checkout, inside the package in a wheel

REAL_DATASETS: dict[str, dict[str, Any]] = {
    "co2": {"file": "co2_mauna_loa_weekly.csv", "import": {},
            "description": "Mauna Loa atmospheric CO2, weekly 1958-2001 (ppm; 59 missing weeks)",
            "period_samples": 52},
    "sunspots": {"file": "sunspots_yearly.csv", "import": {"time_units": "year"},
                 "description": "Yearly mean sunspot number 1700-2008", "period_samples": 11},
    "elnino": {"file": "elnino_nino12_monthly.csv", "import": {},
               "description": "Nino 1+2 sea-surface temperature, monthly 1950-2010 (degC)", "period_samples": 12},
}


def real_datasets() -> dict[str, str]:
    """Name -> description of each shipped real series."""
    return {name: spec["description"] for name, spec in REAL_DATASETS.items()}


def real_dataset_path(name: str) -> Path:
    """The CSV file of the shipped real series ``name`` (it may be absent from a stripped install)."""
    if name not in REAL_DATASETS:
        raise UnknownNameError(f"no shipped real dataset {name!r}; available: {', '.join(REAL_DATASETS)}")
    return DATA_DIR / REAL_DATASETS[name]["file"]


def load_real(name: str) -> xr.Dataset:
    """The shipped real series ``name`` (see :func:`real_datasets`), imported from its CSV."""
    if name not in REAL_DATASETS:
        raise UnknownNameError(f"no shipped real dataset {name!r}; available: {', '.join(REAL_DATASETS)}")
    spec = REAL_DATASETS[name]
    return from_csv(DATA_DIR / spec["file"], name=name, **spec["import"])


__all__ = ["DATA_DIR", "REAL_DATASETS", "load_real", "real_datasets"]
