import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def rankwise_cmd():
    """The CLI as a user runs it, in a subprocess."""
    return [sys.executable, "-m", "rankwise.tui.cli"]
