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
import { bundlePipeline, runExample } from "./cli.mjs";

export async function loadEmbedder(bundle, dtype = "q8") {
  const head = JSON.parse(fs.readFileSync(path.join(bundle, "manifest.json"), "utf8")).embedding;
  if (!head || !["mean", "cls"].includes(head.pooling)) {
    // transformers.js pools by mean or cls; a max-pooled bundle's graph output sentence_embedding has it
    throw new Error(`${bundle}: not an embedding bundle with mean or cls pooling (export --task embedding)`);
  }
  const extractor = await bundlePipeline("feature-extraction", bundle, dtype);
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

if (import.meta.url === `file://${process.argv[1]}`)
  await runExample("embed.mjs", process.argv.slice(2), loadEmbedder, embed);
