"""The dependency rules of DESIGN.md, read from every module's imports with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("deployer", "canary", "dashboards", "sample_app")
PLATFORM = ("deployer", "canary", "dashboards")
# Each third-party SDK has exactly one owner: a module, or a package folder (ending in "/").
SDK_OWNERS = {
    "git": "deployer/source.py",
    "docker": "deployer/fleet/docker/",
    "rq": "deployer/queue.py",
    "prometheus_api_client": "canary/sources.py",
    "alembic": "deployer/schema.py",
}
# Migration scripts are Alembic's plug-ins by nature; the app (a separate program) has its own.
SDK_PLUGIN_FOLDERS = {"alembic": ("deployer/migrations/", "sample_app/schema.py", "sample_app/migrations/",
                                  "sample_app/tests/")}
DASHBOARD_MAY_USE = {"deployer.service", "deployer.model", "deployer.settings"}
# What the pure cores must never reach, even through a helper module of their package.
IMPURE = {"time", "random", "datetime", "os", "sys", "socket", "subprocess", "threading", "asyncio", "io",
          "pathlib", "shutil", "tempfile", "logging", "httpx", "requests", "urllib", "sqlalchemy", "sqlmodel",
          "git", "docker", "rq", "redis", "prometheus_client", "prometheus_api_client", "secrets", "uuid"}
PURE_ALLOWED_THIRD_PARTY = {"numpy", "scipy"}
# The judge reads its configuration as validated pydantic models: data definitions that do no
# I/O. Only the modules that define them may import pydantic; the statistics never do.
CONFIG_MODEL_MODULES = {"canary/config_model.py", "canary/fields.py"}
CONFIG_MODEL_THIRD_PARTY = {"pydantic", "pydantic_core"}


# Every file in hooks/ is a hook script or the library they share: all of them are checked.
HOOKS = sorted(p for p in (ROOT / "hooks").iterdir() if p.is_file() and not p.name.startswith("."))


def modules() -> list[Path]:
    found = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "tests" not in p.parts[len(ROOT.parts):]]
    found.extend(hook_scripts())
    return sorted(found)


def hook_scripts(python: bool = True) -> list[Path]:
    """The git hooks the platform ships in hooks/: the Python ones, or (python=False) the others."""
    found = []
    for path in sorted((ROOT / "hooks").iterdir()):
        if not path.is_file() or path.suffix not in ("", ".py", ".sh"):
            continue
        first = path.read_text(errors="replace").split("\n", 1)[0]
        if (path.suffix == ".py" or "python" in first) == python:
            found.append(path)
    return found


def imports_of(path: Path) -> set[str]:
    """Absolute dotted names a module imports (relative imports resolved against its package)."""
    return _imports_of_text(path.read_text(), path)


def _imports_of_text(text: str, path: Path) -> set[str]:
    tree = ast.parse(text, filename=str(path))
    rel = path.relative_to(ROOT).with_suffix("")
    package = list(rel.parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                names.add(module)
                if not node.module:
                    names.update(f"{module}.{a.name}" for a in node.names)
            else:
                assert node.module is not None
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def name_of(path: Path) -> str:
    return str(path.relative_to(ROOT))


def top(name: str) -> str:
    return name.split(".")[0]


ALL = modules()


def test_there_is_something_to_check() -> None:
    assert len(ALL) > 30
    assert {p.name for p in HOOKS} >= {"pre-receive", "post-receive", "pre-push", "deployer_hook.py"}


STDLIB = frozenset(getattr(__import__("sys"), "stdlib_module_names"))


@pytest.mark.parametrize("path", HOOKS, ids=name_of)
def test_hooks_use_only_the_standard_library(path: Path) -> None:
    """A git server has whatever Python it has: hooks import the standard library and their own library only."""
    outside = {top(n) for n in imports_of(path)} - STDLIB - {"__future__", "deployer_hook"}
    assert not outside, f"{name_of(path)} imports {outside}"


@pytest.mark.parametrize("path", [p for p in ALL if name_of(p).startswith("canary/")], ids=name_of)
def test_canary_knows_nothing_of_the_controller_or_dashboard(path: Path) -> None:
    assert not {top(n) for n in imports_of(path)} & {"deployer", "dashboards"}


@pytest.mark.parametrize("path", [p for p in ALL if name_of(p).startswith("dashboards/")], ids=name_of)
def test_dashboard_goes_through_the_service(path: Path) -> None:
    used = {n for n in imports_of(path) if top(n) == "deployer"}
    modules_used = {".".join(n.split(".")[:2]) for n in used}
    assert modules_used <= DASHBOARD_MAY_USE, modules_used - DASHBOARD_MAY_USE
    assert "canary" not in {top(n) for n in imports_of(path)}


@pytest.mark.parametrize("path", [p for p in ALL if name_of(p).startswith(("sample_app/", "hooks/"))], ids=name_of)
def test_app_and_hooks_import_nothing_from_the_platform(path: Path) -> None:
    assert not {top(n) for n in imports_of(path)} & set(PLATFORM)


def owned_by(path: str, owner: str) -> bool:
    """True when `path` is the owner module, or inside the owner package folder."""
    return path.startswith(owner) if owner.endswith("/") else path == owner


@pytest.mark.parametrize("sdk", sorted(SDK_OWNERS))
def test_each_sdk_has_one_owner(sdk: str) -> None:
    importers = {name_of(p) for p in ALL if sdk in {top(n) for n in imports_of(p)}}
    importers = {i for i in importers if not i.startswith(SDK_PLUGIN_FOLDERS.get(sdk, ()))}
    strays = {path for path in importers if not owned_by(path, SDK_OWNERS[sdk])}
    assert not strays, f"{sdk} imported outside {SDK_OWNERS[sdk]}: {sorted(strays)}"


def test_a_stray_docker_import_would_be_caught(tmp_path: Path) -> None:
    # The rule itself must bite: a module outside deployer/fleet/docker/ importing docker is a stray.
    assert not owned_by("deployer/fleet/local/runtime.py", SDK_OWNERS["docker"])
    assert not owned_by("deployer/fleet/docker.py", SDK_OWNERS["docker"])
    assert owned_by("deployer/fleet/docker/engines.py", SDK_OWNERS["docker"])
    stray = ROOT / "deployer" / "fleet" / "local" / "stray_check.py"
    tree_imports = {top(n) for n in _imports_of_text("import docker.errors\nfrom docker import DockerClient\n", stray)}
    assert "docker" in tree_imports


def test_every_hook_script_is_checked() -> None:
    hooks = hook_scripts()
    assert {p.name for p in hooks} >= {"post-receive"}
    assert all(p in ALL for p in hooks)


def test_shell_hooks_call_only_the_api() -> None:
    # A shell hook cannot import; it must not run platform code either (`python -m deployer...`).
    for path in hook_scripts(python=False):
        text = path.read_text()
        assert not any(f"-m {pkg}" in text or f"import {pkg}" in text for pkg in PLATFORM), path


# Packages whose modules a pure core may use, provided they are pure too (the closure follows them).
PURE_MAY_FOLLOW = {"deployer": ("deployer", "canary"), "canary": ("canary",)}


def _closure(start: Path) -> dict[str, set[str]]:
    """Imports of `start` and of every platform module it may use (its own package, canary) that it pulls in."""
    packages = PURE_MAY_FOLLOW[start.relative_to(ROOT).parts[0]]
    seen: dict[str, set[str]] = {}
    todo = [start]
    while todo:
        path = todo.pop()
        key = name_of(path)
        if key in seen:
            continue
        seen[key] = imports_of(path)
        for name in seen[key]:
            if top(name) not in packages:
                continue
            candidate = ROOT / Path(*name.split("."))
            for option in (candidate.with_suffix(".py"), candidate / "__init__.py"):
                if option.is_file() and option.name != "__init__.py":
                    todo.append(option)
    return seen


@pytest.mark.parametrize("core", ["deployer/pipeline.py", "deployer/guarded.py", "canary/judge.py",
                                  "canary/variants.py", "canary/flag_judge.py"])
def test_pure_cores_do_no_io(core: str) -> None:
    for module, names in _closure(ROOT / core).items():
        followed = set(PURE_MAY_FOLLOW[core.split("/")[0]])
        outside = {top(n) for n in names} - followed - {"__future__"}
        assert not outside & IMPURE, f"{module} imports {outside & IMPURE}"
        stdlib_ok = {"math", "dataclasses", "enum", "typing", "collections", "functools", "itertools", "statistics",
                     "bisect", "operator", "abc", "re", "heapq"}
        allowed = stdlib_ok | PURE_ALLOWED_THIRD_PARTY
        if module in CONFIG_MODEL_MODULES:
            allowed |= CONFIG_MODEL_THIRD_PARTY
        assert outside <= allowed, f"{module} imports {outside - allowed}"
