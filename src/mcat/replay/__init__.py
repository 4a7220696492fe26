"""Per-task replay storage with context (K back) and future (M ahead) windows and MC returns."""

from mcat.replay.store import MultiTaskReplay, ReplayBatch, discounted_returns

__all__ = ["MultiTaskReplay", "ReplayBatch", "discounted_returns"]
