"""Pieces of test code that several test modules run."""

#: Python source that, run first in a fresh interpreter, records in ``attempts`` every attempt to
#: import mamba_ssm (a finder placed first on sys.meta_path); the code after it asserts on that.
MAMBA_IMPORT_SPY = """
import sys
attempts = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "mamba_ssm":
            attempts.append(name)
        return None
sys.meta_path.insert(0, Spy())
"""
