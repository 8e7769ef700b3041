// Classify text with a codir-edge bundle in Node, through transformers.js, as an app would.
//
//   node node/classify.mjs BUNDLE [--dtype q8|fp32] "a gripping film" "dull"
//   node node/classify.mjs BUNDLE --dtype fp32 < texts.txt        (one text per line)
//
// Prints one JSON object per text: {"text", "label", "score"}. The bundle loads as exported:
// onnx/model.onnx is dtype "fp32", onnx/model_quantized.onnx (the INT8 pick for one thread) is "q8",
// the label names come from config.json and texts are cut at tokenizer_config.json's
// model_max_length, the length the export measured the bundle at.
import path from "node:path";
import readline from "node:readline";
import { env, pipeline } from "@huggingface/transformers";

export async function loadClassifier(bundle, dtype = "q8") {
  env.allowRemoteModels = false; // nothing is fetched from the Hugging Face Hub
  env.localModelPath = path.dirname(path.resolve(bundle)) + path.sep;
  return pipeline("text-classification", path.basename(path.resolve(bundle)), { dtype });
}

export async function classify(classifier, texts) {
  const out = [];
  for (const text of texts) {
    // one text per call, as an app classifies what a user typed; batching several texts pads them
    // to one length, and dynamic INT8 then quantizes each text with its batch mates' range
    const [best] = await classifier(text);
    out.push({ text, label: best.label, score: best.score });
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
    console.error('usage: node classify.mjs BUNDLE [--dtype q8|fp32] [TEXT ...]  (texts on stdin when none given)');
    process.exit(2);
  }
  const texts = args.length ? args : await readLines(process.stdin);
  const classifier = await loadClassifier(bundle, dtype);
  for (const row of await classify(classifier, texts)) console.log(JSON.stringify(row));
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
