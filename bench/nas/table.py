"""The tabular benchmark of `cell.cnn`: member keys, and the table file that maps them to results.

A member of `cell.cnn` is keyed by its cell in NAS-Bench-201's notation,
`|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` (node 1's incoming edge, then node 2's, then node 3's, each
`op~i` the op on the edge from node i), with NAS-Bench-201's op names. Every edge is present and
the cell's DAG has one topological order, so two cells are isomorphic as DAGs only when their keys
are equal: the key is the cell's canonical form as a graph (`space_members` checks that graph
hashes and keys are as many). Some distinct cells compute the same function (a skip into node 1;
`equivalence.py` groups them): the table holds every member, each trained once, so such a class
is trained once per member (the meta's `functions` counts the classes).

`table.json` holds `meta` (how it was built) and `members`: key -> [accuracy, params, macs,
seconds], accuracy the validation accuracy in [0, 1] after the last epoch, seconds the CPU time of
training and evaluating the member on one thread (on a shared machine, wall time stretches with the
others' load; CPU time on one thread is the member's own cost). `read` checks every entry; it
imports nothing heavy (the test and the regret tables read it without torch).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPACE = HERE / "cell.cnn"
TABLE = HERE / "table.json"
PARTIAL = HERE / "table.partial.json"  # the build's progress, rewritten after each member
EDGES = ("e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2")  # the decisions, in NAS-Bench-201's order
OPS = {  # the option labels of `Edge` in cell.cnn -> NAS-Bench-201's op names
    "Identity": "skip_connect",
    "ReLUConvBN(c)": "nor_conv_3x3",
    "AvgPool(3, stride = 1, pad = 1)": "avg_pool_3x3",
}
COLUMNS = ("accuracy", "params", "macs", "seconds")
WALK_LIMIT = 10_000  # members the enumeration may meet: the space has 729
WALK_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class Entry:
    accuracy: float  # validation accuracy after the last epoch, in [0, 1]
    params: int
    macs: int
    seconds: float  # CPU time of training and evaluating it, one thread


def key_of(decisions: dict[str, str]) -> str:
    """NAS-Bench-201's arch string of a member's decisions ({edge: option label})."""
    ops = [f"{OPS[decisions[edge]]}~{edge[-1]}" for edge in EDGES]
    return f"|{ops[0]}|+|{ops[1]}|{ops[2]}|+|{ops[3]}|{ops[4]}|{ops[5]}|"


def parse_key(key: str) -> list[list[tuple[str, int]]]:
    """The ops into nodes 1, 2 and 3 of a key, each `(op, from node)`: `key_of` read back."""
    nodes = key.strip("|").split("|+|")
    return [[(op, int(i)) for op, i in (e.split("~") for e in n.split("|"))] for n in nodes]


def entry_json(entry: Entry) -> list:
    return [round(entry.accuracy, 6), entry.params, entry.macs, round(entry.seconds, 3)]


def dump(meta: dict, members: dict[str, Entry]) -> str:
    """The table's text: one member a line, so that a rebuild diffs line by line."""
    lines = [f"  {json.dumps(k)}: {json.dumps(entry_json(e))}" for k, e in sorted(members.items())]
    body = ",\n".join(lines)
    return f'{{"meta": {json.dumps(meta, sort_keys=True)},\n "members": {{\n{body}\n}}}}\n'


def read(path: Path = TABLE) -> tuple[dict, dict[str, Entry]]:
    """(meta, {key: Entry}); ValueError naming the first entry that is not a valid result."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    members = {}
    for key, row in raw["members"].items():
        members[key] = _entry(key, row)
    return raw["meta"], members


def _entry(key: str, row) -> Entry:
    if not (isinstance(row, list) and len(row) == len(COLUMNS)):
        raise ValueError(f"{key}: expected [{', '.join(COLUMNS)}], got {row!r}")
    accuracy, params, macs, seconds = row
    if not (isinstance(accuracy, float | int) and 0.0 <= accuracy <= 1.0):
        raise ValueError(f"{key}: accuracy {accuracy!r} is not in [0, 1]")
    if not all(isinstance(n, int) and n >= 0 for n in (params, macs)):
        raise ValueError(f"{key}: params and macs must be counts, got {params!r}, {macs!r}")
    if not (isinstance(seconds, float | int) and math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"{key}: seconds {seconds!r} is not a duration")
    return Entry(float(accuracy), params, macs, float(seconds))


def space_members() -> list[tuple[str, object]]:
    """(key, graph) of every member of `cell.cnn`, in the order of the project's own enumeration
    (`search.space.walk`); SystemExit when the walk does not end, or when two members share a key
    or a graph hash (the key would not be the canonical form)."""
    from cnnc.search.space import load_space, text_hash, walk

    space = load_space(SPACE, args={"classes": 10})
    size, members = walk(space, limit=WALK_LIMIT, seconds=WALK_SECONDS, keep=True)
    if not size.exact:
        raise SystemExit(f"the walk of {SPACE} did not end: {size.text()}")
    keyed = {}
    for m in members:
        key = key_of(m.labels())
        if key in keyed:
            raise SystemExit(f"two members share the key {key}")
        keyed[key] = m.graph
    if len({text_hash(g) for g in keyed.values()}) != len(keyed):
        raise SystemExit("two members with different keys have the same graph")
    return list(keyed.items())
