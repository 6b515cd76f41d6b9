"""Fixtures shared by several test modules."""
import os

import pytest


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A project folder of its own (runs/, data/synth/) so nothing lands in the checkout."""
    root = tmp_path_factory.mktemp("home")
    old = os.environ.get("HANDSSCA_HOME")
    os.environ["HANDSSCA_HOME"] = str(root)
    yield root
    if old is None:
        os.environ.pop("HANDSSCA_HOME", None)
    else:
        os.environ["HANDSSCA_HOME"] = old
