import json

import numpy as np
import pytest
import sympy as sp
import torch

from kexue_core.checks import (
    NOT_AT_SCALE,
    NOT_OFFLINE,
    PROVED,
    REPRODUCED,
    CheckRecorder,
    claims_dir,
)


@pytest.fixture
def rec(tmp_path):
    return CheckRecorder("demo-chapter", source="https://kexue.fm/archives/1", out_dir=tmp_path)


def test_close_passes_and_records(rec, tmp_path):
    rec.close("pi", 3.14159, np.pi, atol=1e-5, why="printed digits")
    assert rec.records[0].status == REPRODUCED
    data = json.loads((tmp_path / "demo-chapter.json").read_text())
    assert data["records"][0]["claim"] == "pi"
    assert data["records"][0]["expected"] == "3.14159"


def test_close_fails_outside_tolerance(rec):
    with pytest.raises(AssertionError, match="pi"):
        rec.close("pi", 3.2, np.pi, atol=1e-3, why="x")
    assert len(rec) == 0


def test_close_needs_tolerance_and_reason(rec):
    with pytest.raises(ValueError):
        rec.close("a", 1.0, 1.0, why="x")
    with pytest.raises(ValueError):
        rec.close("a", 1.0, 1.0, atol=1e-3, why="")
    with pytest.raises(ValueError, match="NaN"):
        rec.close("a", float("nan"), 1.0, atol=1e-3, why="x")


def test_close_elementwise_tensor(rec):
    rec.close("vec", torch.tensor([1.0, 2.0]), [1.0, 2.0 + 1e-9], atol=1e-8, why="round-off")
    with pytest.raises(AssertionError):
        rec.close("vec", torch.tensor([1.0, 2.1]), [1.0, 2.0], rtol=1e-2, why="x")


def test_identity(rec):
    x = sp.Symbol("x", positive=True)
    rec.identity("log exp", sp.log(sp.exp(x)), x)
    assert rec.records[-1].status == PROVED
    with pytest.raises(AssertionError):
        rec.identity("wrong", sp.log(x), x)


def test_holds(rec):
    rec.holds("all positive", torch.tensor([1.0, 2.0]) > 0)
    with pytest.raises(AssertionError, match="1 of 2"):
        rec.holds("all positive", torch.tensor([1.0, -2.0]) > 0)
    with pytest.raises(TypeError):
        rec.holds("not boolean", torch.tensor([1.0]))
    with pytest.raises(ValueError):
        rec.holds("empty", torch.tensor([], dtype=torch.bool))


def test_differs(rec):
    rec.differs("post says 1.92", 0.489, 1.92, min_gap=0.5, why="linearisation")
    assert rec.records[-1].status == NOT_AT_SCALE
    with pytest.raises(AssertionError):
        rec.differs("agrees after all", 1.91, 1.92, min_gap=0.5, why="x")


def test_not_offline_and_table(rec):
    rec.not_offline("BERT accuracy", expected=0.87, why="needs weights")
    assert rec.records[-1].status == NOT_OFFLINE
    html = rec.table().data
    assert "BERT accuracy" in html and "1 checks" in html


def test_bad_chapter_name(tmp_path):
    with pytest.raises(ValueError):
        CheckRecorder("a/b", source="x", out_dir=tmp_path)


def test_claims_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KEXUE_CLAIMS_DIR", str(tmp_path))
    assert claims_dir() == tmp_path
