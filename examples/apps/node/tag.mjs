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

export async function loadTagger(bundle, dtype = "q8") {
  env.allowRemoteModels = false; // nothing is fetched from the Hugging Face Hub
  env.localModelPath = path.dirname(path.resolve(bundle)) + path.sep;
  return pipeline("token-classification", path.basename(path.resolve(bundle)), { dtype });
}

// The position of each word's first piece in the sentence's ids: words tokenized alone must make up
// the sentence's pieces in order (true of WordPiece, whose pre-tokenizer splits on spaces first).
function firstPieces(tokenizer, words) {
  const ids = tokenizer.encode(words.join(" "));
  const perWord = words.map((w, i) => tokenizer.encode(i === 0 ? w : " " + w, { add_special_tokens: false }));
  const flat = perWord.flat();
  let start = -1;
  for (let s = 0; s + flat.length <= ids.length && start < 0; ++s) {
    if (flat.every((id, k) => ids[s + k] === id)) start = s;
  }
  const firsts = [];
  let at = start >= 0 ? start : 1; // cut by the length: the pieces that fit are still in order
  for (const pieces of perWord) {
    firsts.push(at < ids.length ? at : -1);
    at += pieces.length;
  }
  return firsts;
}

export function strictEntities(tags, words) {
  const found = [];
  let open = null;
  [...tags, "O"].forEach((tag, i) => {
    const [prefix, type] = tag === "O" ? ["O", ""] : [tag.slice(0, 1), tag.slice(2)];
    if (open && !(prefix === "I" && type === open.type)) {
      found.push({ ...open, last: i - 1, text: words.slice(open.first, i).join(" ") });
      open = null;
    }
    if (prefix === "B") open = { type, first: i };
  });
  return found;
}

export async function tag(tagger, sentences) {
  const out = [];
  for (const text of sentences) {
    // one sentence per call, as an app tags a message; dynamic INT8 quantizes each call with one range
    const words = text.split(" ").filter((w) => w.length);
    const pieces = await tagger(words.join(" "), { ignore_labels: [] });
    const byIndex = new Map(pieces.map((p) => [p.index, p.entity]));
    const firsts = firstPieces(tagger.tokenizer, words);
    const tags = firsts.map((at) => (at >= 0 && byIndex.has(at) ? byIndex.get(at) : "O"));
    out.push({ text, words, tags, entities: strictEntities(tags, words) });
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
    console.error("usage: node tag.mjs BUNDLE [--dtype q8|fp32] [SENTENCE ...]  (sentences on stdin when none given)");
    process.exit(2);
  }
  const sentences = args.length ? args : await readLines(process.stdin);
  const tagger = await loadTagger(bundle, dtype);
  for (const row of await tag(tagger, sentences)) console.log(JSON.stringify(row));
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
