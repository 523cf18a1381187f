import json

import numpy as np
import pytest
import sympy as sp
import torch

from kexue_core.checks import (
    APPROXIMATE,
    HOLDS,
    REFUTED,
    STATUSES,
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
    rec.close("pi", 3.14159, np.pi, atol=1e-5, claim_of="post", why="printed digits")
    assert rec.records[0].status == REPRODUCED
    data = json.loads((tmp_path / "demo-chapter.json").read_text())
    assert data["records"][0]["claim"] == "pi"
    assert data["records"][0]["expected"] == "3.14159"


def test_close_fails_outside_tolerance(rec):
    with pytest.raises(AssertionError, match="pi"):
        rec.close("pi", 3.2, np.pi, atol=1e-3, claim_of="post", why="x")
    assert len(rec) == 0


def test_close_needs_tolerance_and_reason(rec):
    with pytest.raises(ValueError):
        rec.close("a", 1.0, 1.0, claim_of="post", why="x")
    with pytest.raises(ValueError):
        rec.close("a", 1.0, 1.0, atol=1e-3, claim_of="post", why="")
    with pytest.raises(ValueError, match="NaN"):
        rec.close("a", float("nan"), 1.0, atol=1e-3, claim_of="post", why="x")


def test_close_elementwise_tensor(rec):
    rec.close("vec", torch.tensor([1.0, 2.0]), [1.0, 2.0 + 1e-9], atol=1e-8, claim_of="post", why="round-off")
    with pytest.raises(AssertionError):
        rec.close("vec", torch.tensor([1.0, 2.1]), [1.0, 2.0], rtol=1e-2, claim_of="post", why="x")


def test_identity(rec):
    x = sp.Symbol("x", positive=True)
    rec.identity("log exp", sp.log(sp.exp(x)), x, claim_of="book")
    assert rec.records[-1].status == PROVED
    with pytest.raises(AssertionError):
        rec.identity("wrong", sp.log(x), x, claim_of="book")


def test_holds(rec):
    rec.holds("all positive", torch.tensor([1.0, 2.0]) > 0, claim_of="book")
    with pytest.raises(AssertionError, match="1 of 2"):
        rec.holds("all positive", torch.tensor([1.0, -2.0]) > 0, claim_of="book")
    with pytest.raises(TypeError):
        rec.holds("not boolean", torch.tensor([1.0]), claim_of="book")
    with pytest.raises(ValueError):
        rec.holds("empty", torch.tensor([], dtype=torch.bool), claim_of="book")


def test_refutes_and_not_at_scale(rec):
    rec.refutes("post says 1.92", 0.489, 1.92, min_gap=0.5, erratum="erratum-laplace", why="wrong Laplace step")
    r = rec.records[-1]
    assert (r.status, r.claim_of, r.erratum) == (REFUTED, "post", "erratum-laplace")
    with pytest.raises(AssertionError):
        rec.refutes("agrees after all", 1.91, 1.92, min_gap=0.5, erratum="e", why="x")
    with pytest.raises(ValueError, match="Erratum"):
        rec.refutes("no erratum named", 0.489, 1.92, min_gap=0.5, erratum="", why="x")
    rec.not_at_scale("post's 60.11", 55.0, 60.11, min_gap=1.0, why="smaller model")
    assert rec.records[-1].status == NOT_AT_SCALE == "not reproduced at our scale"
    with pytest.raises(AssertionError):
        rec.not_at_scale("agrees", 60.0, 60.11, min_gap=1.0, why="x")
    with pytest.raises(ValueError, match="NaN"):
        rec.not_at_scale("nan", float("nan"), 60.11, min_gap=1.0, why="x")


def test_claim_of_and_default_status(rec, tmp_path):
    rec.close("post number", 1.0, 1.0, atol=1e-9, why="x", claim_of="post")
    rec.close("book number", 1.0, 1.0, atol=1e-9, why="x", claim_of="book")
    rec.close("approx step", 1.01, 1.0, atol=0.02, why="first order", claim_of="post", status=APPROXIMATE)
    rec.holds("book fact", True, claim_of="book")
    rec.holds("post fact", True, claim_of="post")
    got = [(r.claim_of, r.status) for r in rec.records]
    assert got == [("post", REPRODUCED), ("book", HOLDS), ("post", APPROXIMATE), ("book", HOLDS), ("post", REPRODUCED)]
    data = json.loads((tmp_path / "demo-chapter.json").read_text())
    assert [r["claim_of"] for r in data["records"]] == ["post", "book", "post", "book", "post"]
    with pytest.raises(TypeError):
        rec.close("missing claim_of", 1.0, 1.0, atol=1e-9, why="x")
    for bad in ({"claim_of": "paper"}, {"claim_of": "book", "status": REPRODUCED},
                {"claim_of": "post", "status": HOLDS}, {"claim_of": "post", "status": PROVED},
                {"claim_of": "post", "status": REFUTED}, {"claim_of": "post", "status": "does not reproduce"}):
        with pytest.raises(ValueError):
            rec.close("bad", 1.0, 1.0, atol=1e-9, why="x", **bad)
        with pytest.raises(ValueError):
            rec.holds("bad", True, **bad)
    with pytest.raises(ValueError):
        rec.identity("bad", sp.Integer(1), 1, claim_of="reader")
    assert STATUSES == (PROVED, "checked at random points", REPRODUCED, HOLDS, REFUTED, APPROXIMATE,
                        NOT_AT_SCALE, NOT_OFFLINE)


def test_untested_claims_are_listed_not_counted(rec, tmp_path):
    rec.holds("one check", True, claim_of="book")
    rec.untested("the post's BLEU table", why="needs the post's data")
    assert len(rec) == 1 and rec.untested_claims[0].claim == "the post's BLEU table"
    data = json.loads((tmp_path / "demo-chapter.json").read_text())
    assert data["untested"][0]["why"] == "needs the post's data"
    assert "not tested here" in rec.table().data and "BLEU" in rec.table().data
    with pytest.raises(ValueError):
        rec.untested("no reason", why="")


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
    rec.close("boundary", 1.5, 1.0, atol=0.5, claim_of="post", why="exact")
    rec.close("rtol scales with expected", 101.0, 100.0, rtol=0.011, claim_of="post", why="x")
    with pytest.raises(AssertionError):
        rec.close("rtol too small", 101.0, 100.0, rtol=0.009, claim_of="post", why="x")
    rec.close("sum of both", 102.0, 100.0, atol=1.0, rtol=0.011, claim_of="post", why="x")
    for kw in ({"atol": 1.0}, {"rtol": 0.011}):
        with pytest.raises(AssertionError):
            rec.close("either alone is too small", 102.0, 100.0, claim_of="post", why="x", **kw)
    with pytest.raises(AssertionError, match="exceeded by 0.125"):
        rec.close("message", 1.25, 1.0, atol=0.125, claim_of="post", why="x")


def test_gap_boundaries(rec):
    rec.not_at_scale("absolute boundary", 1.0, 2.0, min_gap=1.0, why="x")
    rec.refutes("relative boundary", 1.0, 2.0, min_gap=0.5, relative=True, erratum="e", why="x")
    with pytest.raises(AssertionError):
        rec.not_at_scale("relative gap too small", 1.0, 2.0, min_gap=0.6, relative=True, why="x")
    with pytest.raises(ValueError):
        rec.not_at_scale("zero gap", 1.0, 2.0, min_gap=0.0, why="x")


def test_table_rows_are_numbered_from_one(rec):
    rec.holds("first", True, claim_of="book")
    rec.holds("second", True, claim_of="book")
    html = rec.table().data
    assert "<tr><td>1</td><td>first</td>" in html and "<tr><td>2</td><td>second</td>" in html


def test_formatting_of_recorded_values(rec):
    from kexue_core.checks import _fmt

    assert _fmt(np.array([True])) == "True"
    assert _fmt(np.array([True, False])) == "[True, False]"
    assert _fmt(123.0) == "123" and _fmt(1e15) == "1e+15" and _fmt(0.1234567) == "0.123457"
    assert _fmt(np.arange(8.0)) == "[0, 1, 2, 3, 4, 5, 6, 7]"
    assert _fmt(np.arange(9.0)) == "9 values in [0, 8]"
