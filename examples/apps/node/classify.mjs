// Classify text with a codir-edge bundle in Node, through transformers.js, as an app would.
//
//   node node/classify.mjs BUNDLE [--dtype q8|fp32] "a gripping film" "dull"
//   node node/classify.mjs BUNDLE --dtype fp32 < texts.txt        (one text per line)
//
// Prints one JSON object per text: {"text", "label", "score"}. The bundle loads as exported:
// onnx/model.onnx is dtype "fp32", onnx/model_quantized.onnx (the INT8 pick for one thread) is "q8",
// the label names come from config.json and texts are cut at tokenizer_config.json's
// model_max_length, the length the export measured the bundle at.
import { bundlePipeline, runExample } from "./cli.mjs";

export async function loadClassifier(bundle, dtype = "q8") {
  return bundlePipeline("text-classification", bundle, dtype);
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

if (import.meta.url === `file://${process.argv[1]}`)
  await runExample("classify.mjs", process.argv.slice(2), loadClassifier, classify);
