"""Data: the dataset schema, files on disk, imports from the world, the time axis and series recipes.

``schema`` (make_dataset, validate, masks) · ``io`` (save/load, HDF5 safety) · ``imports`` (CSV,
netCDF, NumPy) · ``time`` (calendar axes) · ``splits`` (split_time) · ``transforms``, ``embedding``,
``drivers`` and ``series`` (what a learner sees of a measured series).
"""
