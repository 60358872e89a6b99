"""Check the conda env files (``envs/*.yaml``) against ``pyproject.toml``.

Every dependency of an env file must be an exact pin (``name =version``) inside the range that
``pyproject.toml`` gives for the same package: ``[project] dependencies`` and every optional
extra, ``requires-python`` for ``python`` and ``[build-system] requires`` for ``setuptools``
(the post-deploy scripts build nucflow with the env's setuptools). The only packages an env
may hold that ``pyproject.toml`` does not list are :data:`UNLISTED_ALLOWED`. Conda names are
mapped to PyPI distribution names (:data:`CONDA_TO_PYPI`, then PEP 503 normalisation)::

    python -m nucflow.envs_check [ENV_FILE ...] [--pyproject pyproject.toml]

checks ``envs/*.yaml`` by default and also that each env's Python is the running one's.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from nucflow.errors import InputError

CONDA_TO_PYPI = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "matplotlib-base": "matplotlib",
}
"""Conda package names whose PyPI distribution has another name (beyond case and ``-``/``_``:
``pybigwig`` is ``pyBigWig``, ``pyyaml`` is ``PyYAML`` after normalisation)."""

UNLISTED_ALLOWED = frozenset({"pip"})
"""Packages an env may pin although ``pyproject.toml`` does not list them: ``pip`` runs the
post-deploy script. Anything else an env needs belongs in ``pyproject.toml`` first."""

PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)\s*==?\s*(?P<version>[0-9][0-9A-Za-z.+!]*)$"
)
"""An exact conda pin: ``name =1.2.3`` (or ``==``); no wildcards, ranges or build strings."""


def read_env(path: str | Path) -> dict[str, str]:
    """The pins of a conda env file: conda package name → version."""
    path = Path(path)
    try:
        env = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise InputError(f"{path}: cannot read the env file ({error})".replace("\n", " ")) from None
    dependencies = env.get("dependencies") if isinstance(env, dict) else None
    if not isinstance(dependencies, list) or not dependencies:
        raise InputError(f"{path}: no 'dependencies' list")
    pins: dict[str, str] = {}
    for entry in dependencies:
        match = PIN.match(entry.strip()) if isinstance(entry, str) else None
        if match is None:
            raise InputError(
                f"{path}: dependency {entry!r} is not an exact pin 'name =version' "
                "(pip sections are not used: every package comes from conda)"
            )
        name = match["name"].lower()
        if name in pins:
            raise InputError(f"{path}: {name} is listed twice")
        pins[name] = match["version"]
    return pins


def pypi_name(conda_name: str) -> str:
    """The normalised PyPI distribution name of a conda package."""
    name = conda_name.lower()
    return canonicalize_name(CONDA_TO_PYPI.get(name, name))


def pyproject_ranges(path: str | Path) -> dict[str, SpecifierSet]:
    """Normalised distribution name → version range, from a ``pyproject.toml``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise InputError(f"{path}: cannot read ({error})") from None
    project = data.get("project", {})
    texts = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        texts += extra
    texts += data.get("build-system", {}).get("requires", [])
    ranges: dict[str, SpecifierSet] = {}
    if "requires-python" in project:
        ranges["python"] = SpecifierSet(project["requires-python"])
    for text in texts:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as error:
            raise InputError(f"{path}: bad requirement {text!r} ({error})") from None
        name = canonicalize_name(requirement.name)
        ranges[name] = ranges.get(name, SpecifierSet()) & requirement.specifier
    return ranges


def check_env(path: str | Path, ranges: dict[str, SpecifierSet]) -> dict[str, str]:
    """Check one env file's pins against ``ranges``; returns PyPI name → pinned version.

    Raises :class:`InputError` (one line: env file, package, pin, pyproject's range) for a pin
    outside its range, and for a package that ``pyproject.toml`` does not list.
    """
    checked: dict[str, str] = {}
    for conda_name, version in read_env(path).items():
        name = pypi_name(conda_name)
        try:
            parsed = Version(version)
        except InvalidVersion:
            raise InputError(f"{path}: {conda_name} ={version} is not a version") from None
        if name in ranges:
            if not ranges[name].contains(parsed, prereleases=True):
                raise InputError(
                    f"{path}: {conda_name} ={version} is outside pyproject.toml's range "
                    f"{name}{ranges[name] or ' (any)'}"
                )
        elif name not in UNLISTED_ALLOWED:
            raise InputError(
                f"{path}: {conda_name} ={version} is not listed in pyproject.toml (only "
                f"{', '.join(sorted(UNLISTED_ALLOWED))} may be pinned without a range there)"
            )
        checked[name] = version
    return checked


def check_python(path: str | Path, version: str, running: tuple[int, int]) -> None:
    """Raise :class:`InputError` unless an env's Python pin is ``major.minor`` of ``running``:
    Snakemake's script preamble imports its own modules from the driver's interpreter."""
    if Version(version).release != running:
        raise InputError(
            f"{path}: python ={version}, but Snakemake runs on Python "
            f"{running[0]}.{running[1]} (pin python ={running[0]}.{running[1]})"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Check env files; print one line per file; 1 (and the error) if one fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("envs", nargs="*", type=Path, help="env files (default: envs/*.yaml)")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args(argv)
    paths = args.envs or sorted(Path("envs").glob("*.yaml"))
    try:
        if not paths:
            raise InputError("envs/: no env files (run from the repository root)")
        ranges = pyproject_ranges(args.pyproject)
        for path in paths:
            pins = check_env(path, ranges)
            if "python" not in pins:
                raise InputError(f"{path}: no python pin")
            check_python(path, pins["python"], sys.version_info[:2])
            print(f"{path}: {len(pins)} pins inside {args.pyproject}'s ranges")
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
