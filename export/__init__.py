"""Export stage: checkpoint -> verified ONNX with aucues metadata -> (GPU) TensorRT engine.

Library first; `aucues export` / `aucues engine` (cli/export_cmd.py) parse flags and call these.
Importing this package is light: torch, onnx, onnxruntime and tensorrt load inside the functions."""

if __name__ != "aucues.export":  # the folder is installed as aucues.export; never as a top-level `export`
    raise ImportError("the export/ folder is the aucues.export package: `import aucues.export` "
                      "(installed by `pip install -e .` or the aucues wheel)")


from aucues.export.config import ExportConfig, Tolerances, FP16_TOLERANCES, FP32_TOLERANCES
from aucues.export.formats import ExportFormat, available_formats, get_format, register_format
from aucues.export.metadata import METADATA_KEY, preprocess_from_onnx, read_metadata
from aucues.export.onnx_export import export_onnx
from aucues.export.report import ExportReport
from aucues.export.tensorrt_engine import EngineConfig, build_engine

__all__ = ["ExportConfig", "ExportFormat", "ExportReport", "EngineConfig", "FP16_TOLERANCES", "FP32_TOLERANCES",
           "METADATA_KEY", "Tolerances", "available_formats", "build_engine", "export_onnx", "get_format",
           "preprocess_from_onnx", "read_metadata", "register_format"]
