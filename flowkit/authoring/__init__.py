"""What a step is made of: ``@step`` and its options, flow parameters, ``fk.File`` and metrics.
Imports ``errors`` only: everything else builds on these."""
