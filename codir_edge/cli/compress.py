"""``codir-edge compress``: its options come from ``compress/options.py``; this file prints the summary."""

from __future__ import annotations

from functools import partial

import typer

from codir_edge.cli.generate import Args, command
from codir_edge.cli.options import write_json
from codir_edge.compress.options import COMPRESS, FINE_INPUTS


@command(COMPRESS)
def compress(args: Args) -> None:
    """Distil a BERT teacher into a smaller student with CoDIR, in either of its two stages.

    --stage fine (default): a fine-tuned classifier on its task (or kd, mse, none to compare). One
    pass of the teacher fills a memory bank (cached under --out/cache, reused when teacher and data
    match); training then needs no teacher.

    --stage pre: a pretrained backbone on unlabelled text, into a general student for --stage fine
    --student (or finetune --model); masked-LM terms join in when the teacher has an MLM head.

    --task embedding: a sentence-embedding model (a sentence-transformers folder, or an encoder with
    --pooling and --normalize) on unlabelled text, into a smaller sentence-transformers model.

    --task ner: a token classifier (finetune --task ner) on word-tagged sentences (CoNLL or jsonl),
    per-token kd, mse or codir (a token-level contrastive term); the teacher runs beside the student.

    Writes a Hugging Face folder with metrics.json and train_log.jsonl. Several GPUs or CPUs:

    \b
      torchrun --nproc-per-node N -m codir_edge compress ...
    """
    from codir_edge.compress.config import stage_config
    from codir_edge.compress.run import run_compress
    from codir_edge.core.errors import InputError
    from codir_edge.data.options import train_data_specs
    from codir_edge.models.hub_ids import resolve_model_dir

    teacher = resolve_model_dir(args.teacher, "--teacher")
    student = resolve_model_dir(args.student, "--student") if args.student is not None else None
    config = stage_config(args.stage, args.values)
    common = {"overwrite": args.overwrite, "resume": args.resume, "cache_from": tuple(args.cache_from or ()),
              "show_progress": not args.quiet}  # fmt: skip
    if config.stage in ("pre", "embed"):
        which = "--stage pre" if config.stage == "pre" else "--task embedding"
        for name in FINE_INPUTS:
            if args.given(name):
                flag = "--" + name.replace("_", "-")
                raise InputError(f"{flag} applies to --stage fine only: drop it ({which} reads unlabelled text)")
        report = run_compress(teacher, args.data, args.out, config, text_field=args.text_column, **common)
        if report.rank == 0:  # under torchrun, rank 0 speaks for the run
            typer.echo(pre_line(report) if config.stage == "pre" else embed_line(report))
            if report.vocabulary is not None:
                typer.echo(vocab_line(report.vocabulary))
            write_json(args.json_path, report.summary())
        return
    train_spec, eval_spec = train_data_specs(args)
    report = run_compress(teacher, train_spec, args.out, config, student_dir=student, eval_data=eval_spec, **common)
    if report.rank != 0:
        return
    typer.echo(fine_line(report))
    transfer = partial(transfer_line, objective=report.objective)
    for line, part in ((transfer, report.transfer_set), (shape_line, report.shape_search),
                       (pruning_line, report.pruning), (vocab_line, report.vocabulary)):  # fmt: skip
        if part is not None:
            typer.echo(line(part))
    write_json(args.json_path, report.summary())


def fine_line(report) -> str:
    if report.compress_stage == "token":
        bank = "none (the teacher runs beside the student)"
    elif report.objective == "none":
        bank = "not needed"
    else:
        bank = "reused" if report.bank.reused_from else f"built in {report.bank.build_seconds:.0f} s"
    return (
        f"{report.task} {report.objective}: student dev {report.metric} {report.student_score:.4f} "
        f"(teacher {report.teacher_score:.4f}), {report.student_layers} of {report.teacher_layers} layers, "
        f"{report.student_parameters / 1e6:.1f}M parameters; bank {bank}; "
        f"{report.train_examples_per_s:.0f} examples/s on {report.device} {report.precision}; "
        f"{report.wall_time_s:.0f} s; student in {report.out_dir}"
    )


def pre_line(report) -> str:
    bank = "reused" if report.bank.reused_from else f"built in {report.bank.build_seconds:.0f} s"
    figures = report.summary()
    mlm = ""
    if figures["mlm_accuracy"] is not None:
        mlm = f", masked-LM accuracy {figures['mlm_accuracy']:.4f} (teacher {figures['teacher_mlm_accuracy']:.4f})"
    return (
        f"pre: held-out CKA with the teacher {figures['cka']:.4f} (skip init {figures['initial_cka']:.4f}), "
        f"retrieval top-1 {figures['retrieval_top1']:.4f} over {report.held_out_examples} texts{mlm}; "
        f"{report.train_examples} training texts; {report.student_layers} of {report.teacher_layers} layers, "
        f"{report.student_parameters / 1e6:.1f}M parameters; bank {bank}; "
        f"{report.train_examples_per_s:.0f} examples/s on {report.device} {report.precision}; "
        f"{report.wall_time_s:.0f} s; general student in {report.out_dir}"
    )


def embed_line(report) -> str:
    bank = "reused" if report.bank.reused_from else f"built in {report.bank.build_seconds:.0f} s"
    figures = report.summary()
    head = report.embedding
    return (
        f"embedding {report.objective}: held-out cosine to the teacher {figures['student_score']:.4f} (skip init "
        f"{figures['initial_score']:.4f}), retrieval top-1 {figures['retrieval_top1']:.4f} over "
        f"{report.held_out_examples} texts; {report.train_examples} training texts; {report.student_layers} of "
        f"{report.teacher_layers} layers, {report.student_parameters / 1e6:.1f}M parameters, {head['pooling']} "
        f"pooling{', normalised' if head['normalize'] else ''}; bank {bank}; "
        f"{report.train_examples_per_s:.0f} examples/s on {report.device} {report.precision}; "
        f"{report.wall_time_s:.0f} s; sentence-transformers model in {report.out_dir}"
    )


def shape_line(search: dict) -> str:
    chosen = search["chosen"]
    return (
        f"latency budget {search['budget_ms']:g} ms (INT8 p95, {search['threads']} thread(s), sequence length "
        f"{search['seq_len']}, on {search['device']}): chose {chosen['layers']} layers, {chosen['heads']} heads, "
        f"FFN {chosen['ffn']} at p95 {chosen['p95_ms']:.2f} ms; {search['timed']} of {len(search['candidates'])} "
        "shapes timed"
    )


def pruning_line(pruning: dict) -> str:
    return (
        f"pruned: {pruning['heads_per_layer']} of {pruning['teacher_heads']} heads and {pruning['ffn_width']} of "
        f"{pruning['teacher_ffn_width']} FFN neurons per layer kept, ranked on {pruning['importance_samples']} "
        f"training sentences in {pruning['importance_seconds']:.1f} s"
    )


def vocab_line(vocabulary: dict) -> str:
    return (
        f"vocabulary ({vocabulary['mode']}): {vocabulary['kept']:,} of {vocabulary['full_size']:,} rows kept "
        f"({vocabulary['used_kept']:,} of the {vocabulary['used']:,} tokens the training text uses, "
        f"{vocabulary['fallback']:,} single characters or bytes, "
        f"{vocabulary['special']} special), {vocabulary['embedding_bytes_saved_fp32'] / 1e6:.1f} MB of fp32 "
        f"embeddings saved; {vocabulary['dev_texts_retokenized']} of {vocabulary['dev_texts']} "
        f"{vocabulary.get('scored_on', 'dev')} texts and "
        f"{vocabulary['train_rows_retokenized']} training rows tokenize differently than with the full vocabulary"
    )


def transfer_line(transfer: dict, objective: str) -> str:
    """What the teacher alone labelled, and what was kept out of it (and, for codir, whose label picks the
    contrastive negatives of those rows)."""
    parts = []
    if transfer["unlabeled"]:
        u = transfer["unlabeled"]
        parts.append(
            f"{u['kept']} unlabelled texts of {u['read']} read (dropped: {u['dropped_dev']} dev, "
            f"{u['dropped_labeled']} labelled, {u['dropped_repeats']} repeats)"
        )
    if transfer["augmented"]:
        a = transfer["augmented"]
        parts.append(f"{a['kept']} augmented sentences ({a['per_example']} per labelled example asked)")
    return (
        f"transfer set: {transfer['labeled_rows']} labelled rows + "
        + " + ".join(parts)
        + f"; {transfer['rows_per_epoch']} rows per epoch"
        + ("; their negatives follow the teacher's argmax" if objective == "codir" else "")
    )
