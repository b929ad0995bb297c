"""The npm package itself: its manifest, and its type declarations through ``tsc``."""

import json
import re
import shutil
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


def test_it_packs_installs_and_imports_as_a_dependency_of_another_project(tmp_path):
    """``npm pack``'s tarball, installed offline into an empty project (no peer is
    pulled in), imports by its name in Node, each entry with its exports."""
    if shutil.which("npm") is None:
        require_node_modules()  # skips, or fails in CI, with the reason
    npm = {"capture_output": True, "text": True, "timeout": 120, "check": True}
    subprocess.run(["npm", "pack", "--pack-destination", tmp_path, "--silent"], cwd=PACKAGE, **npm)
    [tarball] = tmp_path.glob("workflow-push-*.tgz")
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text('{"name": "app", "version": "1.0.0", "type": "module"}')
    subprocess.run(
        ["npm", "install", tarball, "--offline", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=app,
        **npm,
    )
    assert sorted(p.name for p in (app / "node_modules").iterdir() if p.name[0] != ".") == [
        "workflow-push"
    ]
    script = (
        "const m = await import('workflow-push');"
        "console.log(JSON.stringify(Object.keys(m).sort()));"
    )
    done = subprocess.run(["node", "--input-type=module", "-e", script], cwd=app, **npm)
    exported = json.loads(done.stdout)
    assert {"ExecutionStream", "ExecutionSocket", "watchExecution", "watchExecutionFeed"} <= set(
        exported
    )
    installed = app / "node_modules" / "workflow-push"
    assert (installed / "types" / "vue.d.ts").is_file() and not (installed / "test").exists()
