"""The set-up the training chapters share (handssca.engine.chapter): paths shown relative to the
repository or the build folder, lines that fit the book's column, a clear error for a wrong
data_root, and the sizes of the network trained and of the paper's configuration."""
import pytest

from handssca import resolve_profile
from handssca.engine.chapter import (COLUMN, fit, network_sizes, shown_path, shown_text,
                                     training_chapter)
from handssca.report import parameter_counts
from handssca.utils import repo_root


def test_paths_are_shown_relative_to_the_repository_or_the_build(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDSSCA_BUILD_DIR", str(tmp_path / "build"))
    assert shown_path(repo_root() / "runs" / "ho3d-x") == "runs/ho3d-x"
    assert shown_path(tmp_path / "build" / "results" / "a.json") == "<build>/results/a.json"
    text = shown_text(f"[data] using the data in {repo_root() / 'data' / 'synth' / 'x'} "
                      f"and {tmp_path / 'build' / 'results'}")
    assert str(repo_root()) not in text and str(tmp_path) not in text
    assert "data/synth/x" in text and "<build>/results" in text


def test_printed_lines_fit_the_column():
    text = fit("word " * 60 + "\nshort")
    assert all(len(line) <= COLUMN for line in text.splitlines())
    assert text.splitlines()[-1] == "short"


def test_a_data_root_without_the_dataset_names_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"training_K\.json.*data/README\.md"):
        training_chapter("freihand", resolve_profile("smoke"), data_root=str(tmp_path))


def test_the_trained_network_and_the_papers_are_counted_by_the_package():
    sizes = network_sizes(resolve_profile("quick"), "ho3d")
    assert sizes["paper"] == parameter_counts(["ssca"])["ssca"]["total"]
    assert 0 < 10 * sizes["trained"] < sizes["paper"]  # the CPU profile's network is small
