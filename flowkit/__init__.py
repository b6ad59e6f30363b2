"""flowkit: plain-Python pipelines, cached by content, run locally or compiled for orchestrators.

The public API (``import flowkit as fk``): it imports the authoring parts and the ``Flow`` facade."""

from flowkit.authoring.files import Dir, File
from flowkit.authoring import prebuilt as steps
from flowkit.authoring.metrics import log_metric, log_param
from flowkit.authoring.step import Resources, Step, step
from flowkit.authoring.sweep import sweep
from flowkit.errors import FlowkitError
from flowkit.flow import Flow, flow
from flowkit.graph.builder import Output

__all__ = ["Dir", "File", "Flow", "FlowkitError", "Output", "Resources", "Step", "flow", "log_metric", "log_param", "step", "steps",
           "sweep"]
__version__ = "0.1.0"
