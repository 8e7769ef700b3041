// Embed text with a codir-edge embedding bundle (export --task embedding) in Node, through
// transformers.js's feature-extraction pipeline, as an app would.
//
//   node node/embed.mjs BUNDLE [--dtype q8|fp32] "how do I reset my pin" "card not arrived"
//   node node/embed.mjs BUNDLE --dtype fp32 < texts.txt        (one text per line)
//
// Prints one JSON object per text: {"text", "embedding"}. The bundle loads as exported:
// onnx/model.onnx is dtype "fp32", onnx/model_quantized.onnx is "q8"; the pipeline reads the graph's
// last_hidden_state and pools it as manifest.json's "embedding" entry says (mean or cls, normalised or
// not): the same vector the graph's own sentence_embedding output holds.
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { env, pipeline } from "@huggingface/transformers";

export async function loadEmbedder(bundle, dtype = "q8") {
  env.allowRemoteModels = false; // nothing is fetched from the Hugging Face Hub
  env.localModelPath = path.dirname(path.resolve(bundle)) + path.sep;
  const head = JSON.parse(fs.readFileSync(path.join(bundle, "manifest.json"), "utf8")).embedding;
  if (!head || !["mean", "cls"].includes(head.pooling)) {
    // transformers.js pools by mean or cls; a max-pooled bundle's graph output sentence_embedding has it
    throw new Error(`${bundle}: not an embedding bundle with mean or cls pooling (export --task embedding)`);
  }
  const extractor = await pipeline("feature-extraction", path.basename(path.resolve(bundle)), { dtype });
  return { extractor, options: { pooling: head.pooling, normalize: head.normalize } };
}

export async function embed({ extractor, options }, texts) {
  const out = [];
  for (const text of texts) {
    // one text per call, as an app embeds a query; dynamic INT8 quantizes each call with one range
    const tensor = await extractor(text, options);
    out.push({ text, embedding: Array.from(tensor.data) });
  }
  return out;
}

async function readLines(stream) {
  const lines = [];
  for await (const line of readline.createInterface({ input: stream })) if (line.length) lines.push(line);
  return lines;
}

async function main(argv) {
  const args = [...argv];
  const bundle = args.shift();
  let dtype = "q8";
  const at = args.indexOf("--dtype");
  if (at >= 0) [, dtype] = args.splice(at, 2);
  if (!bundle || !["q8", "fp32"].includes(dtype)) {
    console.error("usage: node embed.mjs BUNDLE [--dtype q8|fp32] [TEXT ...]  (texts on stdin when none given)");
    process.exit(2);
  }
  const texts = args.length ? args : await readLines(process.stdin);
  const embedder = await loadEmbedder(bundle, dtype);
  for (const row of await embed(embedder, texts)) console.log(JSON.stringify(row));
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
