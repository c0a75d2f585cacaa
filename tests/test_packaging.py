"""The package declaration in pyproject.toml against the folders it ships (cheap stand-in for building a wheel).

setuptools warns, forty lines at a time, about any importable directory that `packages` leaves out, and
silently drops data files that no `package-data` glob matches.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import re
import tomllib
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


# --- the image's lock file ----------------------------------------------------------------------------

LOCK_ENTRY = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})+)", re.MULTILINE
)


def _project() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return dict(tomllib.load(handle))


def _lock() -> dict[str, str]:
    """requirements.lock as normalized name -> pinned version (entries with at least one sha256 hash only)."""
    return {canonicalize_name(name): version for name, version, _ in LOCK_ENTRY.findall(_lock_text())}


def _lock_text() -> str:
    return (ROOT / "requirements.lock").read_text()


def test_every_lock_entry_is_pinned_with_hashes() -> None:
    """Each requirement line is `name==version` followed by its hashes: no ranges, no URLs, no unhashed entries."""
    text = _lock_text()
    requirement_lines = [line for line in text.splitlines() if line and not line[0].isspace() and line[0] not in "#-"]
    assert requirement_lines, "requirements.lock lists packages"
    hashed = {match.group(0).split("==")[0] for match in LOCK_ENTRY.finditer(text)}
    assert [line for line in requirement_lines if line.split("==")[0] not in hashed] == []
    assert " @ " not in text
    assert "file://" not in text


@pytest.mark.parametrize(
    "requirement",
    [*_project()["project"]["dependencies"], *_project()["build-system"]["requires"]],
)
def test_the_lock_covers_each_runtime_and_build_requirement(requirement: str) -> None:
    """The image installs the lock with --require-hashes, then the project with --no-deps --no-build-isolation:
    every dependency in pyproject.toml, and the build backend, must be locked at a version it accepts."""
    wanted = Requirement(requirement)
    locked = _lock()
    name = canonicalize_name(wanted.name)
    assert name in locked, f"{wanted.name} is not in requirements.lock"
    assert wanted.specifier.contains(locked[name], prereleases=True), (wanted, locked[name])
    for extra in wanted.extras:  # aiokafka[lz4]: what the extra adds must be locked too
        try:
            declared = importlib.metadata.requires(wanted.name) or []
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f"{wanted.name} is not installed here, so its extra {extra!r} cannot be read")
        for extra_requirement in map(Requirement, declared):
            marker = extra_requirement.marker
            if marker is not None and marker.evaluate({"extra": extra}) and not marker.evaluate({"extra": ""}):
                assert canonicalize_name(extra_requirement.name) in locked, (requirement, extra_requirement.name)


def test_the_lock_holds_no_development_tools() -> None:
    """Only what the image runs: test and lint tools stay out of it."""
    dev = {canonicalize_name(Requirement(r).name) for r in _project()["project"]["optional-dependencies"]["dev"]}
    runtime = {canonicalize_name(Requirement(r).name) for r in _project()["project"]["dependencies"]}
    assert (dev - runtime) & set(_lock()) == set()


def test_the_image_installs_from_the_lock_only() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install --require-hashes -r \S*requirements\.lock", dockerfile)
    assert re.search(r"pip install --no-deps --no-build-isolation /app", dockerfile)
    installs = re.findall(r"pip install[^\n]*", dockerfile)
    assert len(installs) == 2, installs


def test_the_base_images_are_pinned_by_digest() -> None:
    base = re.search(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert base
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+@sha256:[0-9a-f]{64}", base.group(1)), base.group(1)


def test_the_readme_says_how_to_regenerate_the_lock() -> None:
    readme = (ROOT / "README.md").read_text()
    header = _lock_text().splitlines()[1].lstrip("# ").strip()
    assert "uv pip compile" in header
    assert "--generate-hashes" in header
    assert header in readme, "README gives the command that generated requirements.lock"
