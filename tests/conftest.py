import pytest


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Results and caches in a temporary folder, never in the user's."""
    monkeypatch.setenv("VICINAL_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("VICINAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path
