"""The built-in gates: one module each, listed in an explicit registry."""

from __future__ import annotations

from gonogo.gates.builtin.clean_tree import CleanTree
from gonogo.gates.builtin.prod_guard import ProdGuard
from gonogo.gates.builtin.promoted_from import PromotedFrom
from gonogo.gates.model import Gate

REGISTRY: dict[str, Gate] = {gate.id: gate for gate in (CleanTree(), ProdGuard(), PromotedFrom())}
