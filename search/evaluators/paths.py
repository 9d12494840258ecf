"""Which members a supernet trains at a step, and which trained path scores a member.

Input: the members a supernet covers (`space.Member`, valid, each with its picks in the order its
decisions were met). Output: `Paths`, whose `uniform(rng)` draws one member and `fair(rng)` a set of
members, seeded by the caller's `random.Random`; and `Representatives`, the member of each
architecture that training drew, through whose path a member of that architecture is scored.

Contract:
- Under the rule "architecture" a step draws one architecture uniformly (one member each:
  de-isomorphic sampling, Ning et al., "Evaluating Efficient Performance Estimators of Neural
  Architectures", NeurIPS 2021): an architecture that many assignments spell (a skip makes two
  edges interchangeable) is trained no more often than one that few spell. A member is then scored
  through its architecture's trained member (`Representatives`, their "post-de-isomorphism"), so
  isomorphic members get one score, from the path that was trained.
- `uniform` is single-path one-shot's draw (SPOS, Guo et al., ECCV 2020): every decision the path
  meets picks one of its options with equal probability, so a member is drawn with probability
  Π 1/|options| over the decisions it meets. The draw is over decisions, not over members or
  architectures: isomorphic members are distinct paths (each trains its own weights), so an
  architecture that many assignments spell is drawn that many times as often (which the rule
  "architecture" avoids).
- `fair` is FairNAS's strict fairness (Chu et al., ICCV 2021): k paths, k the most options a
  decision has, that together take every option of every decision exactly once (a decision with
  fewer options takes random ones for the rest). A decision met only on some paths (one inside a
  repeat count) takes its options on those paths alone.
- Where the members are not every member of the space (a space too large to walk, covered by a
  sample), an option that leads to no member is never drawn: the decision draws among the options
  that do, with equal probability.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from cnnc.search.architecture import Architectures


@dataclass(slots=True)
class Node:
    """A decision met after the picks that lead here, and where each of its options leads."""

    decision: str
    # option index -> the next decision's Node, or the member the picks spell
    children: dict[int, Node | object] = field(default_factory=dict)


class Paths:
    """The members as a tree of decisions (module docstring)."""

    def __init__(self, members: list):
        if not members:
            raise ValueError("Paths needs at least one member")
        self.root = _tree(members)
        self.options = _option_counts(members)  # decision -> how many options it has
        self.width = max(self.options.values(), default=1)  # k, the paths of a fair step

    def uniform(self, rng: random.Random):
        """One member, each decision on its path drawn uniformly (SPOS)."""
        node = self.root
        while isinstance(node, Node):
            node = node.children[rng.choice(sorted(node.children))]
        return node

    def fair(self, rng: random.Random) -> list:
        """`width` members that together take every option of every decision once (FairNAS)."""
        orders = {name: _fair_order(n, self.width, rng) for name, n in self.options.items()}
        return [self._follow(orders, j, rng) for j in range(self.width)]

    def _follow(self, orders: dict[str, list[int]], j: int, rng: random.Random):
        """The member whose decisions take option `orders[decision][j]`; an option that leads
        to no member is replaced by a uniform draw among those that do."""
        node = self.root
        while isinstance(node, Node):
            wanted = orders[node.decision][j]
            if wanted not in node.children:
                wanted = rng.choice(sorted(node.children))
            node = node.children[wanted]
        return node


def _fair_order(n: int, k: int, rng: random.Random) -> list[int]:
    """Option indices for k paths: each of the n options once, k − n more drawn at random."""
    order = list(range(n)) + [rng.randrange(n) for _ in range(k - n)]
    rng.shuffle(order)
    return order


def _tree(members: list):
    """The decision tree of `members`' picks; a leaf is a member (a space without decisions is
    its one member)."""
    if len(members) == 1 and not members[0].picks:
        return members[0]
    root = None
    for member in members:
        root = _insert(root, member, 0)
    return root


def _insert(node, member, depth: int):
    """`node` with `member` added under its picks from `depth` on."""
    if depth == len(member.picks):
        return member if node is None else node  # a second member of one assignment: the first
    decision, index = member.picks[depth]
    if node is None:
        node = Node(decision)
    if not isinstance(node, Node) or node.decision != decision:
        raise ValueError(f"members disagree on the decision met after {member.picks[:depth]}")
    node.children[index] = _insert(node.children.get(index), member, depth + 1)
    return node


def _option_counts(members: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for member in members:
        for point in member.points:
            counts[point.name] = len(point.labels)
    return counts


class Representatives:
    """The member of each architecture that a supernet trains (module docstring): `of(graph)` is
    the graph to score for `graph`, and its architecture's index (None: an architecture training
    never met, scored through its own path)."""

    def __init__(self, members: list):
        self._registry = Architectures()
        self._graphs = []
        for m in members:
            if self._registry.add(m.graph)[1]:
                self._graphs.append(m.graph)

    def of(self, graph) -> tuple[object, int | None]:
        index, _ = self._registry.add(graph)
        if index < len(self._graphs):
            return self._graphs[index], index
        return graph, None
