"""mcat: MCAT (Guo, Wu, Lee, AAAI 2022) -- meta-RL with an action translator on sparse-reward
tasks."""

from mcat.errors import MCATError

__version__ = "0.1.0"
__all__ = ["MCATError", "__version__"]
