"""Evaluation: metrics, naive and statistical baselines, rolling-origin forecasts, long-run (climate)
scores, and ``evaluate``, which chooses the scores that apply to a model and a dataset."""
