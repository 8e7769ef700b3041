"""Write a bundle's ``manifest.json``: what each file is, its hash, and everything needed to trust and
reproduce it. The reader (``codir_edge.bundle.manifest``) is the contract; this is its writer."""

from __future__ import annotations

import json
from pathlib import Path

from codir_edge.bundle import layout
from codir_edge.bundle.manifest import FORMAT, MANIFEST, sha256_of
from codir_edge.export.spec import ExportSpec
from codir_edge.models.checkpoint import weights_digest

FORMAT_VERSION = 3  # 2: per-thread-count deployment table, alternates, fixed-shape variants; 3: graphs in onnx/
_DTYPES = {1: "float32", 6: "int32", 7: "int64", 10: "float16", 11: "float64"}


def graph_signature(model_path: Path) -> dict:
    """Inputs and outputs with dtype and shape; symbolic dimensions (dynamic axes) keep their names."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph

    def describe(values) -> list[dict]:
        out = []
        for value in values:
            tensor = value.type.tensor_type
            dims = [d.dim_param if d.dim_param else d.dim_value for d in tensor.shape.dim]
            out.append(
                {"name": value.name, "dtype": _DTYPES.get(tensor.elem_type, str(tensor.elem_type)), "shape": dims}
            )
        return out

    initializers = {init.name for init in graph.initializer}
    return {"inputs": describe(v for v in graph.input if v.name not in initializers), "outputs": describe(graph.output)}


def write_manifest(
    bundle: Path,
    variants: list[dict],
    model_dir: Path,
    spec: ExportSpec,
    config: dict,
    parity: dict,
    fused_operators: dict,
    deployment: dict,
    tuning: dict,
    command: str | None,
    plain_counts: dict,
    extra: dict | None = None,
    left_out: list[dict] | None = None,
) -> Path:
    import onnx

    from codir_edge.core.provenance import package_versions, provenance, without_machine_paths

    files = sorted(p for p in bundle.rglob("*") if p.is_file() and p.name != MANIFEST)
    opset = next(
        (
            o.version
            for o in onnx.load(str(bundle / layout.FP32), load_external_data=False).opset_import
            if o.domain in ("", "ai.onnx")
        ),
        None,
    )
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "variants": variants,
        "left_out": left_out or [],  # variants made but not shipped, and why (fixed_variants.left_out_record)
        **graph_signature(bundle / layout.FP32),
        "opset": opset,
        "target": config.get("target_resolved"),
        "parity": parity,
        "fused_operators": {"offline_fusion": fused_operators, "fp32_graph": plain_counts},
        "deployment": deployment,
        "tuning": tuning,
        # the folder's name, not its path: a shipped file carries no path of the build machine
        "source": {"name": model_dir.name, "sha256": weights_digest(model_dir), "model_type": spec.model_type},
        "versions": package_versions(
            ("codir-edge", "onnxruntime", "onnx", "optimum-onnx", "transformers", "torch", "onnxruntime-extensions")
        ),
        "command": without_machine_paths(command or provenance()["command"]),
        "config": config,
        **(extra or {}),  # --task embedding: {"embedding": {pooling, normalize, output, dimension}}
        "files": [
            {"path": p.relative_to(bundle).as_posix(), "sha256": sha256_of(p), "size": p.stat().st_size} for p in files
        ],
    }
    path = bundle / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def write_untuned_bundle(stage: Path, model_dir: Path, model, tokenizer, spec: ExportSpec, config, target: str,
                         variants: list[dict], parity: dict, fused_counts: dict, task: str, extra: dict,
                         command: str | None, deployment: dict | None = None, tuning: dict | None = None,
                         left_out: list[dict] = ()) -> tuple[list[dict], dict, dict]:  # fmt: skip
    """What a bundle of a task kind with its own graph steps (embedding, ner) holds beside its graphs: the
    runtime claims, the tokenizer (cut at the export's length), config.json and the manifest with ``extra``
    (the task kind's own entry), the variants ``left_out`` by the accuracy gate and those the runtime
    claims leave out, and the deployment table when the kind tuned one (ner's INT8 per thread count);
    (variants kept, deployment, tuning)."""
    from codir_edge.export.graph import operator_counts
    from codir_edge.export.steps import claim_runtimes

    if deployment is None:
        deployment = {"threads": {}, "note": f"not tuned for --task {task}: load fp32 or int8 at any thread count"}
        tuning = {"timed": False}
    named = {name for picks in deployment["threads"].values() for name in picks.values()}
    variants, too_new = claim_runtimes(variants, stage, config, named or {"fp32", "int8"})
    tokenizer.model_max_length = min(config.max_length, tokenizer.model_max_length)
    tokenizer.save_pretrained(stage)
    model.config.save_pretrained(stage)
    write_manifest(
        stage, variants=variants, model_dir=model_dir, spec=spec,
        config=config.to_dict() | {"target_resolved": target, "task": task}, parity=parity,
        fused_operators=fused_counts, deployment=deployment, tuning=tuning, command=command,
        plain_counts=operator_counts(stage / layout.FP32), extra=extra, left_out=[*left_out, *too_new],
    )  # fmt: skip
    return variants, deployment, tuning
