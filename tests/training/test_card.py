"""What the training card records about the code and the data."""

import mrm_edge
from mrm_edge.training.card import DATA_CITATIONS, code_version


def test_code_version_names_the_package_torch_python_and_git() -> None:
    info = code_version()
    assert info["mrm_edge"] == mrm_edge.__version__
    assert info["torch"] and info["python"] and "git" in info


def test_both_datasets_are_cited() -> None:
    assert "PTB-XL" in DATA_CITATIONS["ptbxl"] and "CPSC 2018" in DATA_CITATIONS["cpsc2018"]
