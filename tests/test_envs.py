"""Conda envs per rule: every rule names an existing, exactly pinned env file holding what its
script imports, inside pyproject.toml's ranges, with a post-deploy script installing nucflow."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from packaging.utils import canonicalize_name

from nucflow.envs_check import (
    check_env,
    check_python,
    main,
    pypi_name,
    pyproject_ranges,
    read_env,
)
from nucflow.errors import InputError

ENVS = sorted((REPO / "envs").glob("*.yaml"))
SRC = REPO / "src"

# Imports inside functions that a rule's env may lack, by (nucflow module, imported package):
# the code path that needs them is never reached by a rule whose env lacks them.
LAZY_NOT_NEEDED = {
    # optional download of a pretrained model from the Hugging Face Hub; inside the workflow
    # the pretrained model is always a local directory (the pretrain rule's output)
    ("nucflow.models.files", "huggingface_hub"),
    # model-side helpers (one-hot / convolution of encoded rows) used only by torch rules
    ("nucflow.tokenize.atomic", "torch"),
    ("nucflow.tokenize.cse", "torch"),
}

# Loads the workflow with Snakemake's API and prints each rule's env, script and action.
RULES_JSON = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings, OutputSettings, ResourceSettings, StorageSettings
)
repo, workdir = Path(sys.argv[1]), Path(sys.argv[2])
with SnakemakeApi(OutputSettings(quiet=None)) as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(),
        config_settings=ConfigSettings(configfiles=[repo / "config" / "config.yaml"]),
        storage_settings=StorageSettings(),
        snakefile=repo / "Snakefile",
        workdir=workdir,
    )._workflow
    print(json.dumps([
        {
            "name": rule.name,
            "dir": str(Path(rule.snakefile).parent),
            "conda": rule.conda_env,
            "script": rule.script,
            "action": not (rule.norun or rule.is_run),
        }
        for rule in workflow.rules
    ]))
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> list[dict]:
    """Every rule of the workflow (demo config): name, directory of its file, env, script."""
    workdir = tmp_path_factory.mktemp("rules")
    result = subprocess.run(
        [sys.executable, "-c", RULES_JSON, str(REPO), str(workdir)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def rule_env(rule: dict) -> Path:
    """The env file a rule names, resolved like Snakemake does (relative to the rule's file)."""
    return (Path(rule["dir"]) / rule["conda"]).resolve()


def module_file(name: str) -> Path | None:
    """The source file of a nucflow module, or None if ``name`` is not a module."""
    path = SRC.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_names(path: Path, module: str) -> list[tuple[str, bool]]:
    """(imported module, lazy?) of a file, leaving out ``if TYPE_CHECKING:`` blocks."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child, lazy)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, lazy) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.append((base, lazy))
            found.extend((f"{base}.{alias.name}", lazy) for alias in node.names)
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    return found


def script_packages(script: Path) -> dict[str, str]:
    """Third-party distributions a script needs (normalised name → importing module)."""
    distributions = importlib.metadata.packages_distributions()
    stdlib = sys.stdlib_module_names
    needed: dict[str, str] = {}
    todo, seen = [("__script__", script)], set()
    while todo:
        module, path = todo.pop()
        for name, lazy in imported_names(path, module):
            top = name.split(".")[0]
            if top == "nucflow":
                parts = name.split(".")
                for i in range(1, len(parts) + 1):
                    sub = ".".join(parts[:i])
                    found = module_file(sub)
                    if found is not None and sub not in seen:
                        seen.add(sub)
                        todo.append((sub, found))
            elif top not in stdlib and top != "__future__":
                if lazy and (module, top) in LAZY_NOT_NEEDED:
                    continue
                for dist in distributions.get(top, [top]):
                    needed.setdefault(canonicalize_name(dist), module)
    return needed


def test_every_rule_with_an_action_names_an_existing_env(rules):
    missing = [
        f"{rule['name']}: {rule['conda']}"
        for rule in rules
        if rule["action"] and (not rule["conda"] or not rule_env(rule).is_file())
    ]
    assert len(rules) > 20
    assert not missing


def test_rule_envs_hold_what_their_scripts_import(rules):
    lacking = []
    for rule in rules:
        if not (rule["action"] and rule["script"]):
            continue
        env = {pypi_name(name) for name in read_env(rule_env(rule))}
        script = (Path(rule["dir"]) / rule["script"]).resolve()
        for package, module in sorted(script_packages(script).items()):
            if package not in env:
                lacking.append(f"{rule['name']} ({rule_env(rule).name}): {package} via {module}")
    assert not lacking


def test_each_env_is_used_by_some_rule(rules):
    used = {rule_env(rule) for rule in rules if rule["conda"]}
    assert set(ENVS) <= used


@pytest.mark.parametrize("env", ENVS, ids=lambda path: path.name)
def test_env_file_is_exactly_pinned_on_python_311(env):
    pins = read_env(env)
    assert pins["python"] == "3.11"
    assert "pip" in pins and "setuptools" in pins  # the post-deploy script builds nucflow
    assert all(version[0].isdigit() and "*" not in version for version in pins.values())


@pytest.mark.parametrize("env", ENVS, ids=lambda path: path.name)
def test_env_pins_agree_with_pyproject(env):
    checked = check_env(env, pyproject_ranges(REPO / "pyproject.toml"))
    assert checked["python"] == "3.11"


def _env(tmp_path: Path, *dependencies: str) -> Path:
    path = tmp_path / "bad.yaml"
    lines = "".join(f"  - {dependency}\n" for dependency in dependencies)
    path.write_text(f"channels:\n  - conda-forge\ndependencies:\n{lines}")
    return path


def test_pin_outside_pyproject_range_is_a_one_line_error(tmp_path):
    path = _env(tmp_path, "python =3.11", "pytorch =2.12.1")
    with pytest.raises(InputError) as error:
        check_env(path, pyproject_ranges(REPO / "pyproject.toml"))
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message and "pytorch =2.12.1" in message
    assert "torch<2.14,>=2.13" in message


def test_unlisted_package_and_loose_pins_are_refused(tmp_path):
    ranges = pyproject_ranges(REPO / "pyproject.toml")
    with pytest.raises(InputError, match=r"requests =2\.34\.2 is not listed in pyproject"):
        check_env(_env(tmp_path, "python =3.11", "requests =2.34.2"), ranges)
    for loose in ("numpy", "numpy >=2.0", "numpy =2.4.*", "numpy =2.4.6=py311h1234"):
        with pytest.raises(InputError, match="not an exact pin"):
            read_env(_env(tmp_path, "python =3.11", loose))
    with pytest.raises(InputError, match="not an exact pin"):
        read_env(_env(tmp_path, "python =3.11", {"pip": ["torch==2.13.0"]}))


def test_python_pin_must_be_the_drivers():
    check_python("envs/torch.yaml", "3.11", (3, 11))
    with pytest.raises(InputError, match=r"python =3\.12, but Snakemake runs on Python 3\.11"):
        check_python("envs/torch.yaml", "3.12", (3, 11))


def test_envs_check_command(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(REPO)
    assert main([]) == (0 if sys.version_info[:2] == (3, 11) else 1)
    bad = _env(tmp_path, "python =3.11", "numpy =1.26.4")
    assert main([str(bad)]) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("numpy =1.26.4 is outside pyproject.toml's range numpy>=2.0")
    )


@pytest.mark.parametrize("env", ENVS, ids=lambda path: path.name)
def test_post_deploy_script_installs_the_local_package(env, tmp_path):
    script = env.with_name(f"{env.stem}.post-deploy.sh")
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    # A stand-in `python` records what the script runs (no real install).
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.txt"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (bin_dir / "python").chmod(0o755)
    environ = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    environ.pop("NUCFLOW_SRC", None)
    run = subprocess.run(["bash", str(script)], cwd=REPO, env=environ, capture_output=True)
    assert run.returncode == 0, run.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == f"-m pip install --no-deps --no-build-isolation --no-input --quiet {REPO}"
    assert calls[1] == "-c import nucflow"
    # Launched elsewhere it stops with a clear message.
    run = subprocess.run(
        ["bash", str(script)], cwd=tmp_path, env=environ, capture_output=True, text=True
    )
    assert run.returncode == 1
    assert "is not the nucflow repository" in run.stderr
