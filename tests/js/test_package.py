"""The npm package itself: its manifest, and its type declarations through ``tsc``."""

import json
import re
import subprocess

from tests.js.conftest import NODE_MODULES, PACKAGE, require_node_modules


def test_the_manifest_has_no_runtime_dependencies_and_exports_each_entry_with_its_types():
    manifest = json.loads((PACKAGE / "package.json").read_text())

    assert manifest["type"] == "module"
    assert "dependencies" not in manifest
    assert set(manifest["peerDependencies"]) == {"vue", "react"}
    for entry in [".", "./vue", "./react"]:
        paths = manifest["exports"][entry]
        assert (PACKAGE / paths["default"]).is_file(), entry
        assert (PACKAGE / paths["types"]).is_file(), entry
    lock = json.loads((PACKAGE / "package-lock.json").read_text())
    assert lock["packages"][""]["devDependencies"] == manifest["devDependencies"]


def test_the_modules_import_only_each_other_and_their_peers():
    for module in (PACKAGE / "src").glob("*.js"):
        imported = re.findall(r'^import .* from "([^"]+)";$', module.read_text(), re.M)
        assert all(name.startswith("./") or name in {"vue", "react"} for name in imported), module


def test_the_type_declarations_check_against_their_use():
    """types/*.d.ts compile under strict, and test/usage.ts (calls a caller would
    write, and mistakes they must refuse) checks against them."""
    require_node_modules()
    done = subprocess.run(
        [str(NODE_MODULES / ".bin/tsc"), "--noEmit", "-p", str(PACKAGE / "tsconfig.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
