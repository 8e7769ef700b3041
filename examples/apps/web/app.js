// The page's whole app: load the bundle once, classify what the user typed (or, for a bundle from
// export --task embedding, embed it: window.embed, pooled as manifest.json's "embedding" entry says;
// for one from export --task ner, tag its words: window.tag, each word by its first piece).
// Two browser traps, both handled here:
//  - transformers.js turns local models off in a browser: allowLocalModels must be set;
//  - localModelPath must be a path on this origin ("/models/"), not a full URL: with a URL the
//    pipeline is built without a tokenizer and fails only at the first call.
// onnxruntime-web's .wasm files come from this server (wasmPaths), not from a CDN.
import { env, pipeline } from "/transformers/transformers.js";
import { tagSentence } from "/tagging.js";

env.allowLocalModels = true;
env.allowRemoteModels = false;
env.localModelPath = "/models/";
env.backends.onnx.wasm.wasmPaths = "/ort/";

const params = new URLSearchParams(location.search);
const dtype = params.get("dtype") ?? "q8";
const out = document.getElementById("out");

async function startEmbedder(head) {
  const extractor = await pipeline("feature-extraction", "bundle", { dtype, device: "wasm" });
  const options = { pooling: head.pooling, normalize: head.normalize };
  window.embed = async (texts) => {
    const rows = [];
    for (const text of texts) rows.push({ text, embedding: Array.from((await extractor(text, options)).data) });
    return rows;
  };
  return async (text) => {
    const [row] = await window.embed([text]);
    return `${row.embedding.length} dimensions: ${row.embedding.slice(0, 4).map((x) => x.toFixed(4)).join(", ")}, ...`;
  };
}

async function startTagger() {
  const tagger = await pipeline("token-classification", "bundle", { dtype, device: "wasm" });
  window.tag = async (texts) => {
    const rows = [];
    for (const text of texts) rows.push(await tagSentence(tagger, text));
    return rows;
  };
  return async (text) => {
    const [row] = await window.tag([text]);
    return row.entities.map((e) => `${e.text} (${e.type})`).join(", ") || "no entities";
  };
}

async function startClassifier() {
  const classifier = await pipeline("text-classification", "bundle", { dtype, device: "wasm" });
  // one text per call, as the user types them (see node/classify.mjs for why not batches)
  window.classify = async (texts) => {
    const rows = [];
    for (const text of texts) rows.push({ text, ...(await classifier(text))[0] });
    return rows;
  };
  return async (text) => {
    const [row] = await window.classify([text]);
    return `${row.label} (${row.score.toFixed(4)})`;
  };
}

async function start() {
  const manifest = await (await fetch("/models/bundle/manifest.json")).json();
  const show = manifest.embedding ? await startEmbedder(manifest.embedding)
    : manifest.token_classification ? await startTagger() : await startClassifier();
  const button = document.getElementById("go");
  button.onclick = async () => {
    out.textContent = await show(document.getElementById("text").value);
  };
  button.disabled = false;
  out.textContent = `ready (${dtype})`;
  window.appReady = true;
}

start().catch((error) => {
  out.textContent = `error: ${error}`;
  window.appError = String(error?.stack ?? error);
});
