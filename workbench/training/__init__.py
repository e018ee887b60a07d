"""Training: a validated config, the gradient trainer, its guards, and atomic run folders."""
from .config import TrainConfig, parse_duration
from .fit import fit
from .runs import RunWriter, read_run_files

__all__ = ["RunWriter", "TrainConfig", "fit", "parse_duration", "read_run_files"]
