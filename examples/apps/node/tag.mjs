// Tag named entities with a codir-edge token-classification bundle (export --task ner) in Node,
// through transformers.js's token-classification pipeline, as an app would.
//
//   node node/tag.mjs BUNDLE [--dtype q8|fp32] "EU rejects German call to boycott British lamb ."
//   node node/tag.mjs BUNDLE --dtype fp32 < sentences.txt      (one sentence per line)
//
// Prints one JSON object per sentence: {"text", "words", "tags", "entities"}, each entity
// {"type", "first", "last", "text"} in words. The bundle loads as exported (onnx/model.onnx is dtype
// "fp32", onnx/model_quantized.onnx is "q8", labels from config.json). The pipeline returns a label for
// every piece (ignore_labels: []); a word takes its first piece's label, as the model was trained and
// as codir-edge evaluate scores it, and entities are strict IOB2 spans (B-X then I-X). The pipeline's
// own aggregation_strategy "simple" groups every piece, continuation pieces included, which the model
// was never trained to label, so it is not used here.
import path from "node:path";
import readline from "node:readline";
import { env, pipeline } from "@huggingface/transformers";
import { tagSentence } from "../web/tagging.js"; // shared with the web page

export async function loadTagger(bundle, dtype = "q8") {
  env.allowRemoteModels = false; // nothing is fetched from the Hugging Face Hub
  env.localModelPath = path.dirname(path.resolve(bundle)) + path.sep;
  return pipeline("token-classification", path.basename(path.resolve(bundle)), { dtype });
}

export async function tag(tagger, sentences) {
  const out = [];
  for (const text of sentences) out.push(await tagSentence(tagger, text));
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
    console.error("usage: node tag.mjs BUNDLE [--dtype q8|fp32] [SENTENCE ...]  (sentences on stdin when none given)");
    process.exit(2);
  }
  const sentences = args.length ? args : await readLines(process.stdin);
  const tagger = await loadTagger(bundle, dtype);
  for (const row of await tag(tagger, sentences)) console.log(JSON.stringify(row));
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
