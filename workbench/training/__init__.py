"""Training: a validated config, data preparation (windows, standardiser), the gradient trainer, its
guards, atomic run folders, and ``fit`` (in :mod:`workbench.training.fitting`), which ties them
together and is reached as ``workbench.fit``."""
from .config import TrainConfig, parse_duration
from .runs import RunWriter, current_generation, read_run_files

__all__ = ["RunWriter", "TrainConfig", "current_generation", "parse_duration", "read_run_files"]
