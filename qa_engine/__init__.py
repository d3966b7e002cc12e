"""qa-engine: Korean extractive question answering on onnxruntime, importable without torch or transformers."""
from .config import DecodeConfig, WindowConfig
from .engine import EngineSettings, QAEngine
from .types import AnswerDict, AnswerResult

__all__ = ["QAEngine", "EngineSettings", "WindowConfig", "DecodeConfig", "AnswerDict", "AnswerResult"]
__version__ = "0.1.0"
