"""The devices floor: reaching the boards a model is measured on, from the host's side.

``spec`` reads the devices file, ``ssh`` drives the system OpenSSH client, ``session`` holds one
device for a run (preflight, content-addressed upload, measure, clean), and ``measurement`` types the
one message that asks for a timed run. What runs on the board itself is ``codir_edge/core/runner.py``:
a single standard-library file that imports nothing of the package, kept on the ground floor because
the onnx floor's local session measures through it too. Used by ``profile`` and by
``compress --latency-budget``; above core, onnx and bundle, beside training.
"""
