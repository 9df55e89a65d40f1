"""ctest's entry to tests/python: exit 77 (ctest SKIP_RETURN_CODE) when numpy, pytest or the built
module cannot be imported; pytest's own exit code otherwise, except that "no tests collected" (5)
is a failure, not a pass. Usage: run_pytest.py <tests dir> [pytest args...]"""
import sys

for name in ("numpy", "pytest", "envit"):
    try:
        __import__(name)
    except ImportError as e:
        print(f"envit python tests: skipped: cannot import {name} ({e}) with {sys.executable}")
        sys.exit(77)

import pytest  # noqa: E402

code = pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]])
sys.exit(1 if code == 5 else int(code))
