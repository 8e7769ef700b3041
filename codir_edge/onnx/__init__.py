"""The onnx floor: sessions, batched prediction, scoring and graph building shared by export,
evaluate, profile and compress (above core, beside data and models)."""
