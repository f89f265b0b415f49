"""The extension's CMake metadata is complete and the module imports only what Slicer provides plus bonescreen."""

import ast
import re
import sys
from pathlib import Path

EXT = Path(__file__).resolve().parents[2] / "slicer_extension"
REQUIRED = (
    "EXTENSION_HOMEPAGE",
    "EXTENSION_CATEGORY",
    "EXTENSION_CONTRIBUTORS",
    "EXTENSION_DESCRIPTION",
    "EXTENSION_ICONURL",
    "EXTENSION_SCREENSHOTURLS",
    "EXTENSION_DEPENDS",
)
#: What a Slicer install provides to scripted modules, plus the module's own helpers and the core.
ALLOWED = {"slicer", "qt", "ctk", "vtk", "BoneScreenLib", "bonescreen", "numpy", "torch", "__future__"} | set(
    sys.stdlib_module_names
)


def test_cmake_metadata_complete():
    text = (EXT / "CMakeLists.txt").read_text()
    values = dict(re.findall(r'set\((EXTENSION_[A-Z]+)\s+"([^"]*)"\)', text))
    for key in REQUIRED:
        assert values.get(key, "").strip(), f"{key} is missing or empty"
    assert values["EXTENSION_CATEGORY"] == "Quantification"
    assert "PyTorch" in values["EXTENSION_DEPENDS"].split()
    assert values["EXTENSION_ICONURL"].endswith(".png")
    assert "add_subdirectory(BoneScreen)" in text
    module = (EXT / "BoneScreen" / "CMakeLists.txt").read_text()
    assert "slicerMacroBuildScriptedModule" in module
    listed = [t.replace("${MODULE_NAME}", "BoneScreen") for t in re.findall(r"\S+\.(?:py|png|ui)\b", module)]
    assert "BoneScreen.py" in listed and "BoneScreenLib/logic.py" in listed
    for name in listed:
        assert (EXT / "BoneScreen" / name).is_file(), name
    assert (EXT / "BoneScreen" / "Resources" / "UI" / "BoneScreen.ui").is_file()
    assert (EXT / "BoneScreen" / "Resources" / "Icons" / "BoneScreen.png").is_file()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_module_imports_only_slicer_and_bonescreen():
    for path in [EXT / "BoneScreen" / "BoneScreen.py", *(EXT / "BoneScreen" / "BoneScreenLib").glob("*.py")]:
        extra = _imports(path) - ALLOWED
        assert not extra, f"{path.name} imports {extra}"


def test_core_is_not_imported_at_module_import_time():
    tree = ast.parse((EXT / "BoneScreen" / "BoneScreen.py").read_text())
    top_level = {
        a.name.split(".")[0]
        for n in tree.body
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in getattr(n, "names", [])
    }
    top_from = {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
    assert "bonescreen" not in top_level | top_from
    assert "torch" not in top_level | top_from


def test_ui_names_match_the_widget():
    ui = (EXT / "BoneScreen" / "Resources" / "UI" / "BoneScreen.ui").read_text()
    code = (EXT / "BoneScreen" / "BoneScreen.py").read_text()
    for name in set(re.findall(r"self\.ui\.(\w+)", code)):
        assert f'name="{name}"' in ui, name
    params = set(re.findall(r"<string>(\w+)</string></property>\s*</widget>", ui))
    bound = set(re.findall(r'SlicerParameterName" stdset="0"><string>(\w+)<', ui))
    fields = set(re.findall(r"^    (\w+): ", code, re.M))
    assert bound <= fields, bound - fields
    assert params is not None
