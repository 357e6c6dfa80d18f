"""Operations readiness: inventory collection, snapshots, checks, audits and their reports.

Flow: ``collect`` (registry of resource types -> parallel collectors) builds a ``Snapshot``;
``store`` saves it; ``audit`` runs the registered ``checks`` over it and ``reports`` render the result.
"""
