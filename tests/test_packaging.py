"""The package declaration in pyproject.toml against the folders it ships (cheap stand-in for building a wheel).

setuptools warns, forty lines at a time, about any importable directory that `packages` leaves out, and
silently drops data files that no `package-data` glob matches.
"""

from __future__ import annotations

import fnmatch
import tomllib
from typing import Any

from tests.conftest import ROOT


def _setuptools() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return dict(tomllib.load(handle)["tool"]["setuptools"])


def _shipped_folders(top: str) -> set[str]:
    """Dotted names of `top` and every folder under it that holds files (caches and hidden folders aside)."""
    found = set()
    for path in (ROOT / top).rglob("*"):
        if path.is_file() and not any(part == "__pycache__" or part.startswith(".") for part in path.parts):
            found.add(".".join(path.parent.relative_to(ROOT).parts))
    return found


def test_every_shipped_folder_is_a_declared_package() -> None:
    """A folder under a shipped package is importable, so setuptools wants it declared (config/patterns was not)."""
    declared = set(_setuptools()["packages"])
    top_level = {name for name in declared if "." not in name}
    shipped = set().union(*(_shipped_folders(top) for top in top_level))
    assert shipped - declared == set()
    assert declared - shipped == set()


def test_every_data_file_is_matched_by_package_data() -> None:
    """Files that are not Python modules ship only through a package-data glob of their own package."""
    config = _setuptools()
    globs: dict[str, list[str]] = config.get("package-data", {})
    unshipped = []
    for package in config["packages"]:
        folder = ROOT.joinpath(*package.split("."))
        for path in folder.iterdir():
            is_data = path.is_file() and path.suffix not in {".py", ".pyc"}
            if is_data and not any(fnmatch.fnmatch(path.name, glob) for glob in globs.get(package, [])):
                unshipped.append(str(path.relative_to(ROOT)))
    assert unshipped == []


def test_the_project_root_is_the_package_root() -> None:
    """With "" mapped to the root, `pip install -e .` writes a plain .pth and prints no editable-install notice."""
    assert _setuptools()["package-dir"] == {"": "."}
