"""flowkit: plain-Python pipelines, cached by content, run locally or compiled for orchestrators."""

from .errors import FlowkitError
from .files import File
from .flow import Flow, Output, flow
from .metrics import log_metric, log_param
from .step import Resources, Step, step

__all__ = ["File", "Flow", "FlowkitError", "Output", "Resources", "Step", "flow", "log_metric", "log_param", "step"]
__version__ = "0.1.0"
