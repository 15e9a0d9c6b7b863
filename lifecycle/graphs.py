"""Routing graphs: validation and creation.

A graph is refused at creation unless it is a DAG with exactly one start node, at
least one end node, every node reachable from the start, every node able to reach an
end, and edges only between known nodes. Creating a graph whose code exists adds a
new version and retires the previous one; jobs keep the version they were made on.
A graph has at most ``MAX_NODES`` nodes and ``MAX_EDGES`` edges (read from a UTF-8 file of
at most ``MAX_FILE_BYTES``); its nodes and edges are inserted in bulk.

Invariant: only DAGs with one start and an end, within the size limit, are stored. Guarded
by tests/unit/test_graphs.py, tests/e2e/test_hostile_input.py.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass

import sqlalchemy as sa

from .errors import NotFound, ValidationError
from .schema import routing_edge, routing_graph, routing_node
from .states import NodeKind, values
from .uow import UnitOfWork

# The size limit of a routing graph (docs/lifecycle.md): a real routing has tens of stations.
MAX_NODES = 500
MAX_EDGES = 2000
MAX_FILE_BYTES = 1_000_000

CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")  # always fullmatch: `$` would let a final newline in


@dataclass(frozen=True)
class GraphSpec:
    nodes: tuple[tuple[str, str], ...]  # (code, kind)
    edges: tuple[tuple[str, str], ...]

    @property
    def start(self) -> str:
        return next(code for code, kind in self.nodes if kind == NodeKind.START.value)


def load_graph_file(path: str) -> dict:
    """Read GRAPH.json; anything that is not a small UTF-8 JSON document is VALIDATION_ERROR."""
    shown = repr(path[:200])
    hint = 'expected {"nodes": [{"code": "cut", "kind": "start"}, ...], "edges": [["cut", "stitch"], ...]}'
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise ValidationError(f"cannot read graph file {shown}: {getattr(exc, 'strerror', None) or exc}",
                              hint="pass --file with the path of a readable GRAPH.json") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise ValidationError(f"graph file {shown} is larger than {MAX_FILE_BYTES} bytes",
                              hint=f"a routing graph has at most {MAX_NODES} nodes and {MAX_EDGES} edges")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValidationError(f"graph file {shown} is not UTF-8 text (byte {exc.start})", hint=hint) from exc
    except json.JSONDecodeError as exc:
        raise ValidationError(f"graph file {shown} is not valid JSON: {exc.msg} at line {exc.lineno}",
                              hint=hint) from exc
    except (ValueError, RecursionError) as exc:  # a number past the digit limit; nesting past the stack
        raise ValidationError(f"graph file {shown} is not a graph document: {str(exc)[:120]}", hint=hint) from exc


def validate_code(value: object, what: str) -> str:
    if not isinstance(value, str) or not CODE_RE.fullmatch(value):
        raise ValidationError(f"invalid {what} {value!r}",
                              hint=f"a {what} is 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit")
    return value


def parse_graph(document: object) -> GraphSpec:
    """Validate a GRAPH.json document and return its normalized form."""
    hint = 'expected {"nodes": [{"code": "cut", "kind": "start"}, ...], "edges": [["cut", "stitch"], ...]}'
    if not isinstance(document, dict) or not isinstance(document.get("nodes"), list) \
            or not isinstance(document.get("edges", []), list):
        raise ValidationError("graph must be an object with a 'nodes' list and an 'edges' list", hint=hint)
    if len(document["nodes"]) > MAX_NODES or len(document.get("edges", [])) > MAX_EDGES:
        raise ValidationError(f"graph has {len(document['nodes'])} nodes and {len(document.get('edges', []))} edges; "
                              f"the limit is {MAX_NODES} nodes and {MAX_EDGES} edges",
                              hint="split the routing, or ask for a higher limit")
    nodes: dict[str, str] = {}
    for node in document["nodes"]:
        if not isinstance(node, dict):
            raise ValidationError(f"node {node!r} is not an object", hint=hint)
        code = validate_code(node.get("code"), "node code")
        kind = node.get("kind", NodeKind.WORK.value)
        if kind not in values(NodeKind):
            raise ValidationError(f"node {code} has unknown kind {kind!r}", hint="kind is start, work or end")
        if code in nodes:
            raise ValidationError(f"node {code} is declared twice", hint="node codes are unique within a graph")
        nodes[code] = kind
    edges: list[tuple[str, str]] = []
    for edge in document.get("edges", []):
        if not (isinstance(edge, (list, tuple)) and len(edge) == 2 and all(isinstance(e, str) for e in edge)):
            raise ValidationError(f"edge {edge!r} is not a [from, to] pair of node codes", hint=hint)
        src, dst = edge
        for end in (src, dst):
            if end not in nodes:
                raise ValidationError(f"edge {src} -> {dst} names unknown node {end}",
                                      hint="declare every node in 'nodes' before using it in an edge")
        if src == dst:
            raise ValidationError(f"edge {src} -> {dst} is a self-loop", hint="a routing graph is a DAG")
        if (src, dst) in edges:
            raise ValidationError(f"edge {src} -> {dst} is declared twice", hint="list each edge once")
        edges.append((src, dst))

    starts = [c for c, k in nodes.items() if k == NodeKind.START.value]
    ends = [c for c, k in nodes.items() if k == NodeKind.END.value]
    if len(starts) != 1:
        raise ValidationError(f"graph has {len(starts)} start nodes; exactly one is required",
                              hint="mark exactly one node with kind 'start'")
    if not ends:
        raise ValidationError("graph has no end node", hint="mark at least one node with kind 'end'")
    successors = {c: [] for c in nodes}
    predecessors = {c: [] for c in nodes}
    for src, dst in edges:
        successors[src].append(dst)
        predecessors[dst].append(src)
    if predecessors[starts[0]]:
        raise ValidationError(f"start node {starts[0]} has incoming edges", hint="nothing routes back to the start")
    for end in ends:
        if successors[end]:
            raise ValidationError(f"end node {end} has outgoing edges", hint="an end node finishes the piece")

    # Kahn's algorithm: whatever is left unsorted sits on a cycle.
    indegree = {c: len(p) for c, p in predecessors.items()}
    queue = deque(c for c, d in indegree.items() if d == 0)
    ordered = 0
    while queue:
        node = queue.popleft()
        ordered += 1
        for nxt in successors[node]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                queue.append(nxt)
    if ordered != len(nodes):
        cyclic = sorted(c for c, d in indegree.items() if d > 0)
        raise ValidationError(f"graph has a cycle through {', '.join(cyclic)}", hint="a routing graph must be a DAG")

    reachable = _walk(starts[0], successors)
    unreachable = sorted(set(nodes) - reachable)
    if unreachable:
        raise ValidationError(f"nodes not reachable from start: {', '.join(unreachable)}",
                              hint="connect every node to the start node, or remove it")
    reaches_end = set().union(*(_walk(end, predecessors) for end in ends))
    dead = sorted(set(nodes) - reaches_end)
    if dead:
        raise ValidationError(f"nodes that reach no end node: {', '.join(dead)}",
                              hint="every path must finish at an end node")
    return GraphSpec(nodes=tuple(nodes.items()), edges=tuple(edges))


def _walk(origin: str, adjacency: dict[str, list[str]]) -> set[str]:
    seen, stack = {origin}, [origin]
    while stack:
        for nxt in adjacency[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def create_graph(uow: UnitOfWork, code: str, spec: GraphSpec) -> dict:
    validate_code(code, "graph code")
    conn = uow.conn
    now = uow.now()
    latest = conn.execute(sa.select(sa.func.max(routing_graph.c.version)).where(routing_graph.c.code == code)).scalar()
    version = (latest or 0) + 1
    conn.execute(routing_graph.update().where(routing_graph.c.code == code, routing_graph.c.status == "active")
                 .values(status="retired", updated_at=now))
    graph_id = conn.execute(routing_graph.insert().values(code=code, version=version, status="active",
                                                          created_at=now, updated_at=now)
                            .returning(routing_graph.c.id)).scalar_one()
    conn.execute(routing_node.insert(), [{"graph_id": graph_id, "node_code": c, "kind": k, "created_at": now}
                                         for c, k in spec.nodes])
    node_ids = dict(conn.execute(sa.select(routing_node.c.node_code, routing_node.c.id)
                                 .where(routing_node.c.graph_id == graph_id)).all())
    if spec.edges:
        conn.execute(routing_edge.insert(), [
            {"graph_id": graph_id, "from_node_id": node_ids[s], "to_node_id": node_ids[d], "created_at": now}
            for s, d in spec.edges])
    return {"graph_id": graph_id, "code": code, "version": version,
            "nodes": [{"code": c, "kind": k} for c, k in spec.nodes], "edges": [list(e) for e in spec.edges]}


def active_graph(conn: sa.Connection, code: str) -> sa.Row:
    row = conn.execute(sa.select(routing_graph).where(routing_graph.c.code == code, routing_graph.c.status == "active")
                       .order_by(routing_graph.c.version.desc()).limit(1)).first()
    if row is None:
        raise NotFound(f"graph {code} not found", hint="create it first: hatthasilpa graph create --tenant T --code CODE --file GRAPH.json")
    return row


def start_node_id(conn: sa.Connection, graph_id: int) -> int:
    return conn.execute(sa.select(routing_node.c.id).where(routing_node.c.graph_id == graph_id,
                                                           routing_node.c.kind == NodeKind.START.value)).scalar_one()


def node_ids(conn: sa.Connection, graph_id: int) -> list[int]:
    return list(conn.execute(sa.select(routing_node.c.id).where(routing_node.c.graph_id == graph_id)
                             .order_by(routing_node.c.id)).scalars())
