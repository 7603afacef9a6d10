"""Fused sweeps (issue 27): the jobs of a sweep that share an architecture and data trained
in one pass, each member as it would train alone. ``forward``: the members' one pass."""
