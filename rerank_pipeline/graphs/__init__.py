"""ONNX graphs: run without torch (runtime.py), exported with it (export.py)."""
