"""setup.cfg against the code: every requirement is used, every import is declared, the transformers minimums cover
the APIs the package and the tests call; and the test suite without the shared data folder."""

import ast
import configparser
import dataclasses
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
# the package and the helper modules that tests and benchmark scripts import from their own folders
LOCAL_MODULES = {"litebert"} | {path.stem for path in [*ROOT.glob("tests/*.py"), *ROOT.glob("benchmarks/*.py")]}
# Required although never imported, and why.
USED_WITHOUT_IMPORT = {"accelerate": "transformers' Trainer needs it; transformers lists it only as an extra"}
# The extras of the tests and benchmarks; every other extra is the package's own, for features not all users need.
TEST_EXTRAS = ("dev", "bench")


def requirements(section: str, option: str) -> list[Requirement]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return [Requirement(line) for line in config[section][option].strip().splitlines()]


def names(reqs: list[Requirement]) -> set[str]:
    return {_normalized(req.name) for req in reqs}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_distributions(folder: Path, at_import_only: bool = False) -> dict[str, set[str]]:
    """Third-party distributions imported by the .py files under `folder` -> the files importing them; with
    `at_import_only`, only the imports that run when the file is imported (not those inside functions or under
    `if TYPE_CHECKING:`)."""
    providers = packages_distributions()
    found = {}
    for path in folder.rglob("*.py"):
        modules = _import_time_imports(path) if at_import_only else _top_level_imports(path)
        for module in modules:
            if module in sys.stdlib_module_names or module in LOCAL_MODULES:
                continue
            for distribution in providers.get(module, [f"<no installed distribution provides {module}>"]):
                found.setdefault(_normalized(distribution), set()).add(str(path.relative_to(ROOT)))
    return found


def _top_level_imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


def _import_time_imports(path: Path) -> set[str]:
    """The top-level modules that importing `path` imports: statements run at import time (class bodies included),
    not function bodies, not `if TYPE_CHECKING:` blocks."""
    pending, imports = list(ast.parse(path.read_text(encoding="utf-8")).body), []
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(node)
        elif isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            pending.extend(node.orelse)
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            pending.extend(child for child in ast.iter_child_nodes(node)
                           if isinstance(child, (ast.stmt, ast.excepthandler)))
    modules = {alias.name.split(".")[0] for node in imports if isinstance(node, ast.Import) for alias in node.names}
    return modules | {node.module.split(".")[0] for node in imports
                      if isinstance(node, ast.ImportFrom) and node.level == 0}


def optional_extras() -> dict[str, set[str]]:
    """The package's own extras (e.g. onnx) -> their distributions."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    extras = config["options.extras_require"]
    return {extra: names(requirements("options.extras_require", extra)) for extra in extras
            if extra not in TEST_EXTRAS}


def test_every_install_requirement_is_imported_by_the_package():
    used = set(imported_distributions(ROOT / "src"))
    unused = names(requirements("options", "install_requires")) - used - set(USED_WITHOUT_IMPORT)
    assert not unused, f"install_requires entries that src/ never imports: {sorted(unused)}"
    assert not set(USED_WITHOUT_IMPORT) & used  # an import makes the exception unnecessary
    base_requirements = [Requirement(line) for line in requires("transformers") or []]
    assert "accelerate" not in {req.name for req in base_requirements if req.marker is None}


def test_every_import_is_declared():
    package = names(requirements("options", "install_requires"))
    extras = package | names(requirements("options.extras_require", "dev"))
    extras |= names(requirements("options.extras_require", "bench"))
    optional = set().union(*optional_extras().values())
    undeclared = {name: files for name, files in imported_distributions(ROOT / "src").items()
                  if name not in package | optional}
    assert not undeclared, f"imported by the package but in neither install_requires nor one of its extras " \
                           f"({', '.join(optional_extras())}): {undeclared}"
    # a distribution of the package's extras is imported only where a feature uses it: every module imports without
    eager = {name: files for name, files in imported_distributions(ROOT / "src", at_import_only=True).items()
             if name in optional - package}
    assert not eager, f"optional distributions imported when a module is imported (import them in the functions " \
                      f"that use them): {eager}"
    for folder in ("tests", "benchmarks"):
        undeclared = {name: files for name, files in imported_distributions(ROOT / folder).items()
                      if name not in extras}
        assert not undeclared, f"imported by {folder}/ but in neither install_requires nor the dev/bench extras: " \
                               f"{undeclared}"


def test_the_import_time_check_tells_lazy_imports_from_eager_ones(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("from typing import TYPE_CHECKING\nimport json\ntry:\n    import yaml\nexcept ImportError:\n"
                      "    import pickle\nif TYPE_CHECKING:\n    import onnx\n\n\nclass Runner:\n    import csv\n\n"
                      "    def run(self):\n        import onnxruntime\n")
    assert _import_time_imports(module) == {"typing", "json", "yaml", "pickle", "csv"}
    assert _top_level_imports(module) >= {"onnx", "onnxruntime"}


def _sdpa_and_flex_take_position_bias() -> bool:
    from transformers.integrations.flex_attention import flex_attention_forward
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return all("position_bias" in inspect.signature(forward).parameters
               for forward in (sdpa_attention_forward, flex_attention_forward))


def _pretrained_config_is_a_dataclass() -> bool:
    from transformers import PreTrainedConfig

    return dataclasses.is_dataclass(PreTrainedConfig)


def _output_capturing_exists() -> bool:
    return importlib.util.find_spec("transformers.utils.output_capturing") is not None


def _activation_checkpointing_exists() -> bool:
    from transformers import PreTrainedModel

    return hasattr(PreTrainedModel, "activation_checkpointing_enable")


# transformers APIs newer than 5.0, the first release that has each (found by installing the releases and running
# the tests), where the code uses them, and the requirement that must cover them.
TRANSFORMERS_APIS = [
    ("transformers.utils.output_capturing", _output_capturing_exists, "5.2.0",
     "src/litebert/modeling_litebert.py", "transformers.utils.output_capturing", "install_requires"),
    ("PreTrainedConfig subclasses are dataclasses (@strict configs)", _pretrained_config_is_a_dataclass, "5.4.0",
     "src/litebert/configuration_litebert.py", "@strict", "install_requires"),
    ("sdpa and flex attention add a position_bias (TUPE)", _sdpa_and_flex_take_position_bias, "5.14.0",
     "src/litebert/modeling_litebert.py", '"position_bias"', "install_requires"),
    ("PreTrainedModel.activation_checkpointing_enable", _activation_checkpointing_exists, "5.23.0",
     "tests/test_modeling.py", "activation_checkpointing_enable", "dev"),
]


@pytest.mark.parametrize("api, available, first_version, user, usage, requirement", TRANSFORMERS_APIS,
                         ids=[row[0] for row in TRANSFORMERS_APIS])
def test_the_transformers_minimum_has_the_apis_the_code_uses(api, available, first_version, user, usage,
                                                            requirement):
    assert usage in (ROOT / user).read_text(encoding="utf-8"), f"{user} no longer uses {api}: drop this row"
    assert available(), f"the installed transformers lacks {api}"
    section = "options" if requirement == "install_requires" else "options.extras_require"
    [transformers] = [req for req in requirements(section, requirement) if req.name == "transformers"]
    minimum = min(Version(spec.version) for spec in transformers.specifier if spec.operator == ">=")
    assert minimum >= Version(first_version), f"{requirement} allows transformers {transformers.specifier}, " \
                                              f"but {api} first appeared in {first_version}"


def test_without_the_shared_data_only_the_tests_reading_it_fail_naming_the_folder(tmp_path):
    tests = tmp_path / "checkout" / "tests"
    tests.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "conftest.py", tests)
    (tests / "test_sample.py").write_text(
        "def test_reads_real_files(shared_data):\n    assert shared_data.is_dir()\n\n\n"
        "def test_needs_no_data():\n    assert True\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                            capture_output=True, text=True, cwd=tests.parent, env={**os.environ})
    assert result.returncode == 1, result.stdout + result.stderr
    # pytest.fail in a fixture counts as an error of that test: it fails, it is not skipped
    assert "1 passed, 1 error" in result.stdout and "skipped" not in result.stdout
    assert f"the shared data folder {tmp_path / 'shared' / 'data'} is missing" in result.stdout
