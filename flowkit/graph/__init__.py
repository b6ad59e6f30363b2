"""The recorded graph of a flow: nodes and their argument trees, the tracer that records a flow
body, and renderings. Imports ``authoring`` and ``errors`` only; knows nothing of caching."""

from flowkit.graph.nodes import (Arg, FlowGraph, FlowSpec, Item, Literal, MapSpec, Mapping, Node, ParamRef, Ref, Seq,
                                 iter_leaves)

__all__ = ["Arg", "FlowGraph", "FlowSpec", "Item", "Literal", "MapSpec", "Mapping", "Node", "ParamRef", "Ref", "Seq",
           "iter_leaves"]
