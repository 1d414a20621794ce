"""The built-in gates: one module each, listed in an explicit registry."""

from __future__ import annotations

from gonogo.gates.builtin.branch_allowed import BranchAllowed
from gonogo.gates.builtin.ci_passed import CiPassed
from gonogo.gates.builtin.clean_tree import CleanTree
from gonogo.gates.builtin.in_scope import InScope
from gonogo.gates.builtin.migration_approved import MigrationApproved
from gonogo.gates.builtin.migration_tested import MigrationTestedUpstream
from gonogo.gates.builtin.migrations_explicit import MigrationsExplicit
from gonogo.gates.builtin.no_blockers import NoBlockers
from gonogo.gates.builtin.prod_guard import ProdGuard
from gonogo.gates.builtin.promoted_from import PromotedFrom
from gonogo.gates.builtin.rollback_feasible import RollbackFeasible
from gonogo.gates.builtin.schema_compatible import SchemaCompatible
from gonogo.gates.model import Gate

REGISTRY: dict[str, Gate] = {
    gate.id: gate
    for gate in (
        CleanTree(),
        BranchAllowed(),
        InScope(),
        CiPassed(),
        MigrationsExplicit(),
        MigrationApproved(),
        MigrationTestedUpstream(),
        RollbackFeasible(),
        SchemaCompatible(),
        PromotedFrom(),
        ProdGuard(),
        NoBlockers(),
    )
}
