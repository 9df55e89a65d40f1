"""`cmake --install` into a temporary prefix puts the module where the interpreter finds it with
PYTHONPATH=<prefix>/<ENVIT_PYTHON_INSTALL_DIR>."""
import os
import subprocess
import sys

import pytest


def test_install_into_a_prefix_then_import(tmp_path):
    build, rel = os.environ.get("ENVIT_BUILD_DIR"), os.environ.get("ENVIT_PYTHON_INSTALL_DIR")
    if not build or not rel:
        pytest.fail("ENVIT_BUILD_DIR and ENVIT_PYTHON_INSTALL_DIR must be set (ctest sets them)")
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", build, "--prefix", str(prefix), "--component", "python"], check=True,
                   capture_output=True)
    env = dict(os.environ, PYTHONPATH=str(prefix / rel))
    r = subprocess.run([sys.executable, "-c", "import envit; print(envit.__file__, envit.__version__)"], env=env,
                       check=True, capture_output=True, text=True, cwd=tmp_path)
    path, version = r.stdout.split()
    assert path.startswith(str(prefix / rel)), path
    assert version.count(".") == 2
