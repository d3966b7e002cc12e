"""qa-engine: Korean extractive question answering on onnxruntime, importable without torch or transformers."""
from .core.config import DecodeConfig, WindowConfig
from .core.types import AnswerDict, AnswerResult
from .engine import EngineSettings, QAEngine

__all__ = ["QAEngine", "EngineSettings", "WindowConfig", "DecodeConfig", "AnswerDict", "AnswerResult"]
__version__ = "0.1.0"
