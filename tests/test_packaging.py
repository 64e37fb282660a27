"""Every subpackage of alsfrs is installed by pyproject.toml (CI installs a wheel)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(conf["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "alsfrs").rglob("__init__.py")}
    assert found <= listed, f"not installed: {sorted(found - listed)}"
