// What the Node examples share: loading a bundle folder as transformers.js's local model (nothing
// fetched from the Hub), and their command line, BUNDLE [--dtype q8|fp32] [TEXT ...] with the texts
// on stdin (one per line) when none are given, one JSON object printed per text.
import path from "node:path";
import readline from "node:readline";
import { env, pipeline } from "@huggingface/transformers";

// A transformers.js pipeline of `task` on the bundle as exported: onnx/model.onnx is dtype "fp32",
// onnx/model_quantized.onnx is "q8".
export async function bundlePipeline(task, bundle, dtype = "q8") {
  env.allowRemoteModels = false; // nothing is fetched from the Hugging Face Hub
  env.localModelPath = path.dirname(path.resolve(bundle)) + path.sep;
  return pipeline(task, path.basename(path.resolve(bundle)), { dtype });
}

async function readLines(stream) {
  const lines = [];
  for await (const line of readline.createInterface({ input: stream })) if (line.length) lines.push(line);
  return lines;
}

// Parse argv, load the model with load(bundle, dtype), run(model, texts) and print its rows.
export async function runExample(script, argv, load, run) {
  const args = [...argv];
  const bundle = args.shift();
  let dtype = "q8";
  const at = args.indexOf("--dtype");
  if (at >= 0) [, dtype] = args.splice(at, 2);
  if (!bundle || !["q8", "fp32"].includes(dtype)) {
    console.error(`usage: node ${script} BUNDLE [--dtype q8|fp32] [TEXT ...]  (texts on stdin when none given)`);
    process.exit(2);
  }
  const texts = args.length ? args : await readLines(process.stdin);
  const model = await load(bundle, dtype);
  for (const row of await run(model, texts)) console.log(JSON.stringify(row));
}
