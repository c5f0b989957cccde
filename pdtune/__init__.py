"""pdtune: benchmark and tune SLO-oriented LLM serving on one GPU with PD-multiplexing."""

from pdtune.api import LLM
from pdtune.config import EngineConfig
from pdtune.request.output import RequestOutput
from pdtune.request.sampling import SamplingParams

__all__ = ["LLM", "EngineConfig", "RequestOutput", "SamplingParams"]
