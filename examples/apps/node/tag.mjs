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
import { tagSentence } from "../web/tagging.js"; // shared with the web page
import { bundlePipeline, runExample } from "./cli.mjs";

export async function loadTagger(bundle, dtype = "q8") {
  return bundlePipeline("token-classification", bundle, dtype);
}

export async function tag(tagger, sentences) {
  const out = [];
  for (const text of sentences) out.push(await tagSentence(tagger, text));
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`)
  await runExample("tag.mjs", process.argv.slice(2), loadTagger, tag);
