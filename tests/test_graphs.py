"""Tests for kexue_core.graphs against the infomap package (independent C++ implementation)."""
import math
import random
import warnings

import networkx as nx
import pytest

infomap = pytest.importorskip("infomap")

from kexue_core.graphs import map_equation, map_equation_directed, optimize_map_equation  # noqa: E402


def _run_infomap(G, weight=None, **flags):
    idx = {v: k for k, v in enumerate(G.nodes)}
    im = infomap.Infomap(silent=True, two_level=True, seed=1, num_trials=10)
    for u, v, d in G.edges(data=True):
        im.add_link(idx[u], idx[v], float(d.get(weight, 1.0)) if weight else 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = im.run(**flags)
    inv = {k: v for v, k in idx.items()}
    return res, {inv[k]: m for k, m in res.modules().items()}


GRAPHS = [
    ("karate", nx.karate_club_graph(), None),
    ("karate", nx.karate_club_graph(), "weight"),
    ("lesmis", nx.les_miserables_graph(), "weight"),
    ("lesmis", nx.les_miserables_graph(), None),
    ("florentine", nx.florentine_families_graph(), None),
]


@pytest.mark.parametrize("name, G, weight", GRAPHS)
def test_map_equation_equals_infomap(name, G, weight):
    res, part = _run_infomap(G, weight)
    assert abs(map_equation(G, part, weight=weight) - res.codelength) < 1e-9
    assert abs(map_equation(G, {v: 0 for v in G}, weight=weight) - res.one_level_codelength) < 1e-9


@pytest.mark.parametrize("name, G, weight", GRAPHS[:3])
def test_singletons_cost_entropy_plus_two_bits(name, G, weight):
    res, _ = _run_infomap(G, weight)
    # each step: one index codeword (entering) + the node + one exit codeword -> H(p) + 2 bits
    singles = map_equation(G, [{v} for v in G], weight=weight)
    assert abs(singles - (res.one_level_codelength + 2.0)) < 1e-12


def test_directed_with_recorded_teleportation_equals_infomap():
    rng = random.Random(0)
    D = nx.DiGraph()
    D.add_nodes_from(range(24))
    for block in (range(0, 8), range(8, 16), range(16, 24)):
        for u in block:
            for v in block:
                if u != v and rng.random() < 0.4:
                    D.add_edge(u, v)
    for _ in range(10):
        u, v = rng.randrange(24), rng.randrange(24)
        if u != v:
            D.add_edge(u, v)
    res, part = _run_infomap(D, directed=True, recorded_teleportation=True, to_nodes=True,
                             teleportation_probability=0.15)
    assert abs(map_equation_directed(D, part, teleportation=0.15) - res.codelength) < 1e-9


def test_optimizer_within_3_percent_of_infomap():
    for G, weight in ((nx.karate_club_graph(), None), (nx.les_miserables_graph(), "weight")):
        res, _ = _run_infomap(G, weight)
        ours = map_equation(G, optimize_map_equation(G, weight=weight, trials=5, seed=0), weight=weight)
        assert ours <= 1.03 * res.codelength


def test_bad_input():
    G = nx.karate_club_graph()
    part = {v: 0 for v in G}
    del part[5]
    with pytest.raises(ValueError, match="partition"):
        map_equation(G, part)
    with pytest.raises(ValueError, match="partition"):
        map_equation(G, [{0, 1}, {1, 2}] + [{v} for v in range(3, 34)])
    with pytest.raises(ValueError, match="directed"):
        map_equation(nx.DiGraph([(0, 1)]), {0: 0, 1: 0})
    with pytest.raises(ValueError, match="teleportation"):
        map_equation_directed(nx.DiGraph([(0, 1)]), {0: 0, 1: 0}, teleportation=1.0)
    with pytest.raises(ValueError, match="trials"):
        optimize_map_equation(G, trials=0)
    with pytest.raises(TypeError, match="partition"):
        map_equation(G, "abc")
    assert math.isfinite(map_equation(G, part | {5: 1}))
