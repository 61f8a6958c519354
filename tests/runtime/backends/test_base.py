"""What a backend reads from its file's name: the precision, by the model-directory contract
(``mrm_edge.artifacts``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mrm_edge.runtime.backends.base import precision_from_filename

from mrm_edge.artifacts import VARIANTS, trtexec_engine_filename


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_onnx_variant_file_names_its_precision(variant: str) -> None:
    v = VARIANTS[variant]
    assert precision_from_filename(Path("/models/m") / v.file) == v.precision


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_names_give_their_precision(precision: str) -> None:
    assert precision_from_filename(Path(f"model.{precision}.0123abcd.engine")) == precision
    assert precision_from_filename(Path(trtexec_engine_filename(precision))) == precision


def test_any_other_name_is_fp32() -> None:
    assert precision_from_filename(Path("model.fp16.onnx.json")) == "fp32"
    assert precision_from_filename(Path("exported.onnx")) == "fp32"
