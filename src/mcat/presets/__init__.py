"""Readable presets for the paper's settings: JSON files beside this module, each a partial
config.json. `mcat train --preset NAME` loads one (flags override it); copy one to start your own.

Paper Table 2 (test reward at 2M steps, 3 seeds): Hopper size, HalfCheetah armature, HalfCheetah
mass, Ant damping, Ant cripple. The paper states a delay of 500 steps for HalfCheetah (Tables 3
and 4); its appendix, with the delays of the other environments, is not public, so Hopper and Ant
use 500 too (our assumption, stated in each file's "note").

Paper Table 3 (``table3-*``: MCAT with and without policy transfer at 1M steps, the same five
families; add ``--no-pt`` for the second row) and Table 4 (``table4-halfcheetah-{armature,mass}-
delay{200,350,500}``: the same comparison as the reward gets sparser).
"""

from __future__ import annotations

import json
from pathlib import Path

from mcat.errors import MCATError

PRESET_DIR = Path(__file__).parent


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def load_preset(name_or_path: str) -> dict:
    path = Path(name_or_path)
    if path.suffix != ".json" or not path.exists():
        path = PRESET_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise MCATError(
            f"unknown preset {name_or_path!r}; known presets: {', '.join(list_presets())}"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MCATError(f"preset {path} is not valid JSON: {exc}") from None
    data.pop("note", None)
    return data
