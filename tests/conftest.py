"""Fixtures shared by several test modules."""
import pytest

from fourdlib.train import runs


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh, empty fourdlib cache and no committed runs: load-or-train starts from nothing.
    Modules that train runs use it for every test: pytestmark = pytest.mark.usefixtures("cache")."""
    monkeypatch.setenv("FOURD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(runs, "REPO_CHECKPOINTS", tmp_path / "repo_checkpoints")
    return tmp_path / "cache"
