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


def test_claims_dir_from_repo_root(monkeypatch, tmp_path):
    # without the env var: the first parent of the working directory that holds _toc.yml
    monkeypatch.delenv("KEXUE_CLAIMS_DIR", raising=False)
    (tmp_path / "_toc.yml").write_text("format: jb-book\n")
    sub = tmp_path / "book" / "part"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert claims_dir() == tmp_path.resolve() / "_build" / "claims"
    elsewhere = tmp_path.parent / (tmp_path.name + "-no-toc")
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert claims_dir() is None


def test_close_tolerance_is_atol_plus_rtol_times_expected(rec):
    # |got - expected| <= atol + rtol*|expected|, with equality allowed (values exact in binary)
    rec.close("boundary", 1.5, 1.0, atol=0.5, why="exact")
    rec.close("rtol scales with expected", 101.0, 100.0, rtol=0.011, why="x")
    with pytest.raises(AssertionError):
        rec.close("rtol too small", 101.0, 100.0, rtol=0.009, why="x")
    rec.close("sum of both", 102.0, 100.0, atol=1.0, rtol=0.011, why="x")
    for kw in ({"atol": 1.0}, {"rtol": 0.011}):
        with pytest.raises(AssertionError):
            rec.close("either alone is too small", 102.0, 100.0, why="x", **kw)
    with pytest.raises(AssertionError, match="exceeded by 0.125"):
        rec.close("message", 1.25, 1.0, atol=0.125, why="x")


def test_differs_gap(rec):
    rec.differs("absolute boundary", 1.0, 2.0, min_gap=1.0, why="x")
    rec.differs("relative boundary", 1.0, 2.0, min_gap=0.5, relative=True, why="x")
    with pytest.raises(AssertionError):
        rec.differs("relative gap too small", 1.0, 2.0, min_gap=0.6, relative=True, why="x")
    with pytest.raises(ValueError):
        rec.differs("zero gap", 1.0, 2.0, min_gap=0.0, why="x")


def test_table_rows_are_numbered_from_one(rec):
    rec.holds("first", True)
    rec.holds("second", True)
    html = rec.table().data
    assert "<tr><td>1</td><td>first</td>" in html and "<tr><td>2</td><td>second</td>" in html


def test_formatting_of_recorded_values(rec):
    from kexue_core.checks import _fmt

    assert _fmt(np.array([True])) == "True"
    assert _fmt(np.array([True, False])) == "[True, False]"
    assert _fmt(123.0) == "123" and _fmt(1e15) == "1e+15" and _fmt(0.1234567) == "0.123457"
    assert _fmt(np.arange(8.0)) == "[0, 1, 2, 3, 4, 5, 6, 7]"
    assert _fmt(np.arange(9.0)) == "9 values in [0, 8]"
