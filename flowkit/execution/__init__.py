"""Running flows: one step (``runtime``, whoever asks), its verdict, plans, runs, forked calls and
the explanations. Imports ``store``, ``keys``, ``graph``, ``authoring``; never a backend."""
