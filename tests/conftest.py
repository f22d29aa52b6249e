"""Shared fixtures live in tests/fixtures/, one module per outside system."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

pytest_plugins = [
    "fixtures.cdn_double",
    "fixtures.dynamodb",
    "fixtures.s3",
    "fixtures.tablestore",
]
