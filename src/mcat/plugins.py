"""User modules that extend mcat (task families, algorithms), imported once on first use: the
comma-separated module names in ``$MCAT_PLUGINS`` and an installed package's entry points."""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from mcat.errors import MCATError

PLUGIN_ENV_VAR = "MCAT_PLUGINS"
_loaded: set[str] = set()  # entry-point groups loaded, and "" for $MCAT_PLUGINS


def load_plugins(group: str) -> None:
    """Import the modules of entry-point ``group`` and of ``$MCAT_PLUGINS`` (each only once)."""
    if group not in _loaded:
        _loaded.add(group)
        for ep in entry_points(group=group):
            ep.load()
    if "" in _loaded:
        return
    _loaded.add("")
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGIN_ENV_VAR, "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MCATError(
                f"cannot import plugin module {module!r} named in ${PLUGIN_ENV_VAR}: {exc}"
            ) from None
