"""Quantized and half-precision variants, one stage function each, ``(source, destination, settings)``
as onnxruntime's own quantization tools are laid out.

- dynamic INT8: weights per channel, activations quantized at run time. ``reduce_range`` (7-bit
  weights) only for x86 targets without VNNI, where u8 x s8 products can saturate; with VNNI or on
  ARM the full range is exact. A graph already fused by the transformer optimizer holds
  com.microsoft operators whose outputs have no inferred type: ``DefaultTensorType`` tells the
  quantizer to treat them as float.
- static INT8 in QDQ form, calibrated on task sentences with MinMax or Entropy (Percentile clips the
  large outliers BERT's activations carry, which is known to wreck its accuracy).
- the peer's dynamic INT8 (``peer_dynamic_int8``): what Optimum's ``AutoQuantizationConfig`` for the
  target asks of onnxruntime's quantizer, so the tuner can time the recipe a user would otherwise run.
- FP16 for GPU targets, inputs and outputs kept in their original types.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from codir_edge.core.errors import InputError
from codir_edge.onnx.graph import dynamic_int8

__all__ = ["CALIBRATION_METHODS", "TARGETS", "dynamic_int8", "fp16", "peer_dynamic_int8", "resolve_target",
           "static_int8"]  # fmt: skip

TARGETS = ("native", "avx512_vnni", "avx2", "arm64", "cuda")
CALIBRATION_METHODS = ("minmax", "entropy")


def resolve_target(target: str) -> str:
    """``native`` becomes this machine's family, so the bundle records what it was tuned for."""
    if target not in TARGETS:
        raise InputError(f"unknown --target '{target}': use one of {', '.join(TARGETS)}")
    if target != "native":
        return target
    import platform

    from codir_edge.core.machine import cpu_flags

    if platform.machine().lower() in ("aarch64", "arm64"):
        return "arm64"
    flags = set(cpu_flags())
    return "avx512_vnni" if {"avx512_vnni", "avx_vnni"} & flags else "avx2"


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over padded batches of task sentences."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._feeds: Iterator[dict] = iter(feeds)

    def get_next(self):
        return next(self._feeds, None)


def static_int8(source: Path, destination: Path, feeds: list[dict[str, np.ndarray]], method: str, target: str,
                op_types: list[str] | None = None, keep_float: tuple[str, ...] = (),
                weights_u8_per_tensor: bool = False, ranges: Path | None = None) -> None:  # fmt: skip
    """QDQ with u8 activations and s8 weights; ``op_types`` limits what is quantized (the fixed-shape
    mobile variant quantizes MatMuls only, with u8 per-tensor weights: the QDQ form NNAPI and Core ML
    take). The nodes that compute indices, shapes and masks stay in float
    (:mod:`codir_edge.onnx.float_paths`): a calibrated range of ``-inf`` there breaks the graph.

    ``ranges``: a file for the calibrated ranges, written by the first call and read by the next ones
    (where quantize_static takes calibration_cache_path: onnxruntime#28221, April 2026; 1.32 here;
    earlier releases calibrate each time). An accuracy search quantizes one
    graph on the same rows again and again, keeping other MatMuls in float each time: the ranges are
    those of the float graph and do not change, so calibrating once saves most of each trial. The
    caller keeps one file per graph, rows, method and ``op_types``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from codir_edge.onnx.float_paths import float_paths

    if method not in CALIBRATION_METHODS:
        raise InputError(f"unknown --calibration-method '{method}': use one of {', '.join(CALIBRATION_METHODS)}")
    quantize_static(
        str(source),
        str(destination),
        _Reader(feeds),
        quant_format=QuantFormat.QDQ,
        per_channel=not weights_u8_per_tensor,
        reduce_range=target == "avx2",
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QUInt8 if weights_u8_per_tensor else QuantType.QInt8,
        nodes_to_exclude=list(dict.fromkeys([*float_paths(source), *keep_float])),
        calibrate_method=CalibrationMethod.MinMax if method == "minmax" else CalibrationMethod.Entropy,
        op_types_to_quantize=op_types,
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": not weights_u8_per_tensor},
        **({"calibration_cache_path": str(ranges)} if ranges is not None and _keeps_ranges() else {}),
    )


def _keeps_ranges() -> bool:
    """Whether this onnxruntime's ``quantize_static`` takes ``calibration_cache_path``."""
    import inspect

    from onnxruntime.quantization import quantize_static

    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


def peer_dynamic_int8(source: Path, destination: Path, target: str) -> None:
    """Optimum's dynamic INT8 for ``target`` (``AutoQuantizationConfig.avx512_vnni``, ``avx2`` or
    ``arm64``, ``is_static=False``): its per-channel, range, symmetry and operator settings, and, as
    its ``ORTQuantizer`` calls onnxruntime's quantizer directly, activation-by-activation MatMuls
    quantized too (``MatMulConstBOnly`` off, where ``quantize_dynamic`` turns it on). Optimum's own
    quantizer cannot type the fused operators' outputs (its users run shape inference first);
    ``DefaultTensorType`` reaches the same graph."""
    import onnx
    from onnxruntime.quantization import quantize_dynamic
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    config = getattr(AutoQuantizationConfig, target)(is_static=False)
    quantize_dynamic(
        str(source),
        str(destination),
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        weight_type=config.weights_dtype,
        op_types_to_quantize=[getattr(op, "value", op) for op in config.operators_to_quantize],
        nodes_to_exclude=list(config.nodes_to_exclude),
        extra_options={
            "WeightSymmetric": config.weights_symmetric,
            "ActivationSymmetric": config.activations_symmetric,
            "MatMulConstBOnly": False,
            "DefaultTensorType": onnx.TensorProto.FLOAT,
        },
    )


def fp16(source: Path, destination: Path) -> None:
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(source)))
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(destination))
