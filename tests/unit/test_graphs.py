"""Routing graph validation (docs/data-model.md): pure rules, no database."""

import pytest

from lifecycle.errors import ValidationError
from lifecycle.graphs import parse_graph


def graph(nodes, edges):
    return {"nodes": [{"code": c, "kind": k} for c, k in nodes], "edges": edges}


def test_valid_branching_graph_is_accepted():
    spec = parse_graph(graph([("cut", "start"), ("a", "work"), ("b", "work"), ("qc", "end")],
                             [["cut", "a"], ["cut", "b"], ["a", "qc"], ["b", "qc"]]))
    assert spec.start == "cut" and len(spec.edges) == 4


@pytest.mark.parametrize("document, fragment", [
    (graph([("a", "start"), ("b", "work"), ("c", "end")], [["a", "b"], ["b", "c"], ["c", "b"]]), "outgoing"),
    (graph([("a", "start"), ("b", "work"), ("c", "work"), ("d", "end")],
           [["a", "b"], ["b", "c"], ["c", "b"], ["c", "d"]]), "cycle"),
    (graph([("a", "start"), ("b", "start"), ("c", "end")], [["a", "c"], ["b", "c"]]), "2 start nodes"),
    (graph([("a", "work"), ("c", "end")], [["a", "c"]]), "0 start nodes"),
    (graph([("a", "start"), ("b", "work")], [["a", "b"]]), "no end node"),
    (graph([("a", "start"), ("c", "end")], [["a", "zz"]]), "unknown node zz"),
    (graph([("a", "start"), ("b", "work"), ("c", "end")], [["a", "c"]]), "not reachable"),
    (graph([("a", "start"), ("b", "work"), ("c", "end")], [["a", "c"], ["a", "b"]]), "reach no end"),
    (graph([("a", "start"), ("c", "end")], [["a", "a"]]), "self-loop"),
    (graph([("a", "start"), ("a", "end")], []), "declared twice"),
    (graph([("a", "start"), ("c", "end")], [["a", "c"], ["a", "c"]]), "declared twice"),
    (graph([("a", "start"), ("c", "finish")], [["a", "c"]]), "unknown kind"),
    (graph([("a", "start"), ("c", "end"), ("b", "work")], [["a", "c"], ["b", "a"], ["a", "b"]]), "incoming"),
    ({"nodes": "a"}, "'nodes' list"),
    ([], "'nodes' list"),
    (graph([("bad code!", "start")], []), "invalid node code"),
    ({"nodes": [{"code": "a", "kind": "start"}], "edges": [["a"]]}, "[from, to]"),
])
def test_invalid_graphs_are_refused_with_a_reason(document, fragment):
    with pytest.raises(ValidationError) as info:
        parse_graph(document)
    assert fragment in info.value.message
    assert info.value.hint
