"""The extension follows Slicer's layout: CMake metadata, complete file lists, catalog entry, thin module."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO_ROOT / "UniversalSeg"
LIBRARY_DIR = REPO_ROOT / "UniversalSegLib"
SHIPPED_SUFFIXES = {".py", ".ui", ".png", ".csv", ".json", ".txt"}
#: What UniversalSeg.py may import at module scope (the rest is imported inside functions).
ALLOWED_TOP_LEVEL = {"slicer", "vtk", "qt", "ctk", "numpy", "__future__"}


def cmake_lists(text: str) -> dict[str, list[str]]:
    """``set(NAME item item ...)`` blocks of a CMake file."""
    return {
        match.group(1): match.group(2).split()
        for match in re.finditer(r"set\((\w+)\s+([^)]*)\)", text)
        if "\n" in match.group(2)
    }


def shipped_files(root: Path) -> list[Path]:
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and path.suffix in SHIPPED_SUFFIXES
        and path.name != "CMakeLists.txt"
        and not any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(root).parts)
    )


def test_every_module_and_library_file_is_listed_in_cmake():
    lists = cmake_lists((MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8"))
    module_listed = set(lists["MODULE_PYTHON_SCRIPTS"]) | set(lists["MODULE_PYTHON_RESOURCES"])
    library_listed = set(lists["UNIVERSALSEGLIB_PYTHON_SCRIPTS"]) | set(
        lists["UNIVERSALSEGLIB_PYTHON_RESOURCES"]
    )
    missing = [p.relative_to(MODULE_DIR).as_posix() for p in shipped_files(MODULE_DIR)]
    missing = [p for p in missing if p not in module_listed]
    missing += [
        p.relative_to(REPO_ROOT).as_posix()
        for p in shipped_files(LIBRARY_DIR)
        if p.relative_to(REPO_ROOT).as_posix() not in library_listed
    ]
    assert not missing, (
        f"Not in UniversalSeg/CMakeLists.txt (run scripts/update_cmake_file_list.py): {missing}"
    )
    stale = [p for p in module_listed if not (MODULE_DIR / p).is_file()]
    stale += [p for p in library_listed if not (REPO_ROOT / p).is_file()]
    assert not stale, f"Listed but missing on disk: {stale}"
    assert "UniversalSeg.py" in lists["MODULE_PYTHON_SCRIPTS"]
    assert "Resources/UI/UniversalSeg.ui" in lists["MODULE_PYTHON_RESOURCES"]
    assert "UniversalSegLib/resources/UniversalSegClasses.csv" in lists["UNIVERSALSEGLIB_PYTHON_RESOURCES"]


def test_update_script_check_mode_agrees():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "update_cmake_file_list.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_module_cmake_builds_the_scripted_module_and_bundles_the_library():
    text = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r"slicerMacroBuildScriptedModule\(\s*NAME \$\{MODULE_NAME\}", text)
    assert "SCRIPTS ${MODULE_PYTHON_SCRIPTS}" in text and "RESOURCES ${MODULE_PYTHON_RESOURCES}" in text
    assert "WITH_GENERIC_TESTS" in text
    assert "SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR}/.." in text
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


def test_top_level_cmake_has_the_extension_metadata():
    text = (REPO_ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "project(UniversalSeg)" in text
    for variable in (
        "HOMEPAGE",
        "CATEGORY",
        "CONTRIBUTORS",
        "DESCRIPTION",
        "ICONURL",
        "SCREENSHOTURLS",
        "DEPENDS",
    ):
        assert re.search(rf'set\(EXTENSION_{variable} "[^"]+"\)', text), variable
    assert 'set(EXTENSION_CATEGORY "Segmentation")' in text
    assert 'set(EXTENSION_DEPENDS "PyTorch")' in text
    order = [
        "find_package(Slicer REQUIRED)",
        "include(${Slicer_USE_FILE})",
        "add_subdirectory(UniversalSeg)",
        "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
        "include(${Slicer_EXTENSION_CPACK})",
    ]
    positions = [text.index(line) for line in order]
    assert positions == sorted(positions)
    icon_url = re.search(r'EXTENSION_ICONURL "([^"]+)"', text).group(1)
    assert (REPO_ROOT / icon_url.split("/main/", 1)[1]).is_file()
    screenshot_url = re.search(r'EXTENSION_SCREENSHOTURLS "([^"]+)"', text).group(1)
    assert (REPO_ROOT / screenshot_url.split("/main/", 1)[1]).is_file()


def test_extensions_index_entry():
    entry = json.loads((REPO_ROOT / "UniversalSeg.json").read_text(encoding="utf-8"))
    assert entry["$schema"].startswith("https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/")
    assert entry["category"] == "Segmentation"
    assert entry["build_dependencies"] == ["PyTorch"]
    assert entry["scm_type"] == "git" and entry["scm_url"].startswith("https://github.com/")
    allowed = {
        "$schema",
        "build_dependencies",
        "build_subdirectory",
        "category",
        "scm_revision",
        "scm_type",
        "scm_url",
        "tier",
    }
    assert set(entry) <= allowed  # the schema has additionalProperties: false


def _module_tree() -> ast.Module:
    return ast.parse((MODULE_DIR / "UniversalSeg.py").read_text(encoding="utf-8"))


def test_module_imports_only_slicer_qt_vtk_and_stdlib_at_module_scope():
    stdlib = set(sys.stdlib_module_names)
    for node in _module_tree().body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top in ALLOWED_TOP_LEVEL or top in stdlib, f"module-scope import of {name}"


def test_module_defines_the_scripted_module_classes_and_typed_parameters():
    tree = _module_tree()
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    for name in ("UniversalSeg", "UniversalSegWidget", "UniversalSegLogic", "UniversalSegTest"):
        assert name in classes
    parameters = classes["UniversalSegParameterNode"]
    assert [d.id for d in parameters.decorator_list if isinstance(d, ast.Name)] == ["parameterNodeWrapper"]
    fields = {node.target.id for node in parameters.body if isinstance(node, ast.AnnAssign)}
    assert fields == {
        "inputVolume",
        "outputSegmentation",
        "model",
        "device",
        "speedMode",
        "selectedClasses",
        "show3D",
    }
    logic_methods = {
        node.name for node in classes["UniversalSegLogic"].body if isinstance(node, ast.FunctionDef)
    }
    assert {"segment", "startSegmentation", "cancel", "isRunning"} <= logic_methods


def test_user_visible_module_strings_are_translatable():
    tree = _module_tree()
    for node in ast.walk(tree):
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(target, ast.Attribute) and target.attr in ("title", "helpText", "acknowledgementText"):
            call = node.value
            assert isinstance(call, ast.Call) and getattr(call.func, "id", "") == "_", target.attr


def test_ui_file_binds_parameters():
    text = (MODULE_DIR / "Resources" / "UI" / "UniversalSeg.ui").read_text(encoding="utf-8")
    for name in ("inputVolume", "outputSegmentation", "show3D"):
        assert f"<string>{name}</string>" in text


@pytest.mark.parametrize("name", ["UniversalSeg.png"])
def test_icon_is_a_128_pixel_png(name):
    data = (MODULE_DIR / "Resources" / "Icons" / name).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (128, 128)
