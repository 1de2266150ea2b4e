"""Export stage: checkpoint -> verified ONNX with aucues metadata -> (GPU) TensorRT engine.

Library first; `aucues export` / `aucues engine` (cli/export_cmd.py) parse flags and call these.
Importing this package is light: torch, onnx, onnxruntime and tensorrt load inside the functions."""

from export.config import ExportConfig, Tolerances, FP16_TOLERANCES, FP32_TOLERANCES
from export.formats import ExportFormat, available_formats, get_format, register_format
from export.metadata import METADATA_KEY, preprocess_from_onnx, read_metadata
from export.onnx_export import export_onnx
from export.report import ExportReport
from export.tensorrt_engine import EngineConfig, build_engine

__all__ = ["ExportConfig", "ExportFormat", "ExportReport", "EngineConfig", "FP16_TOLERANCES", "FP32_TOLERANCES",
           "METADATA_KEY", "Tolerances", "available_formats", "build_engine", "export_onnx", "get_format",
           "preprocess_from_onnx", "read_metadata", "register_format"]
