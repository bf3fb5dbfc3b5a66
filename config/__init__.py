"""Bottom layer of TCP Dashboard: settings, domain values and the error tree.

Every other package may import from here; this package imports none of ours.
"""
