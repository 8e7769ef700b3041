// Run a bundle's token-id graphs with onnxruntime-node directly (no transformers.js): what an app
// does when it tokenizes itself, or ships the .ort file.
//
//   node node/logits.mjs BUNDLE FEEDS.json [--threads N]
//
// FEEDS.json maps a file of the bundle to its inputs, each {"dims": [batch, length], "data": [ids]}:
//   {"onnx/model_quantized.onnx": {"input_ids": {"dims": [1, 4], "data": [101, 2307, 2143, 102]}, ...}}
// Prints {"<file>": {"dims": [...], "data": [...]}} with each graph's first output (the logits).
// Sessions get the options the manifest's deployment table names, so latency matches `profile`.
import fs from "node:fs";
import path from "node:path";
import ort from "onnxruntime-node";

export function sessionOptions(bundle, threads = 1) {
  const manifest = JSON.parse(fs.readFileSync(path.join(bundle, "manifest.json"), "utf8"));
  const given = manifest.deployment?.session_options ?? {};
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: given.inter_op_num_threads ?? 1,
    executionMode: given.execution_mode === "ORT_PARALLEL" ? "parallel" : "sequential",
    graphOptimizationLevel: "all",
  };
}

// The id type each file takes: int64, except where the manifest says otherwise (the NNAPI variant's int32).
export function inputTypes(bundle) {
  const manifest = JSON.parse(fs.readFileSync(path.join(bundle, "manifest.json"), "utf8"));
  return Object.fromEntries(manifest.variants.map((v) => [v.file, v.input_dtype ?? "int64"]));
}

function idTensor(type, data, dims) {
  return type === "int32"
    ? new ort.Tensor("int32", Int32Array.from(data), dims)
    : new ort.Tensor("int64", BigInt64Array.from(data, BigInt), dims);
}

export async function logits(bundle, feedsByFile, threads = 1) {
  const options = sessionOptions(bundle, threads);
  const types = inputTypes(bundle);
  const out = {};
  for (const [file, feeds] of Object.entries(feedsByFile)) {
    const session = await ort.InferenceSession.create(path.join(bundle, file), options);
    const inputs = {};
    for (const [name, { dims, data }] of Object.entries(feeds)) {
      inputs[name] = idTensor(types[file] ?? "int64", data, dims);
    }
    const result = await session.run(inputs);
    const first = result[session.outputNames[0]];
    out[file] = { dims: first.dims, data: Array.from(first.data, Number) };
    await session.release();
  }
  return out;
}

async function main([bundle, feedsFile, ...rest]) {
  if (!bundle || !feedsFile) {
    console.error("usage: node logits.mjs BUNDLE FEEDS.json [--threads N]");
    process.exit(2);
  }
  const threads = rest[0] === "--threads" ? Number(rest[1]) : 1;
  const feeds = JSON.parse(fs.readFileSync(feedsFile, "utf8"));
  console.log(JSON.stringify(await logits(bundle, feeds, threads)));
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
