// Words' tags from transformers.js's token-classification pipeline, the way the model was trained and
// codir-edge evaluate scores it: a word takes its first piece's label, and entities are strict IOB2
// spans (B-X, then any run of I-X). Plain JavaScript with no imports: node/tag.mjs and the web page
// (app.js) share it.

// The position of each word's first piece in the sentence's ids: words tokenized alone must make up
// the sentence's pieces in order (true of WordPiece, whose pre-tokenizer splits on spaces first).
export function firstPieces(tokenizer, words) {
  const ids = tokenizer.encode(words.join(" "));
  const perWord = words.map((w, i) => tokenizer.encode(i === 0 ? w : " " + w, { add_special_tokens: false }));
  const flat = perWord.flat();
  let start = -1;
  for (let s = 0; s + flat.length <= ids.length && start < 0; ++s) {
    if (flat.every((id, k) => ids[s + k] === id)) start = s;
  }
  const firsts = [];
  let at = start >= 0 ? start : 1; // not found (a tokenizer that merges across spaces): assume one leading special
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

// How many leading words fit whole in the model's length, special tokens included (a binary search:
// a longer prefix never has fewer pieces). The pipeline's own truncation would cut the end token off
// and keep half a word; codir-edge cuts a long sentence before its first word that does not fit, so
// the app's model sees what evaluate scored.
export function wordsThatFit(tokenizer, words, maxLength) {
  const fits = (n) => tokenizer.encode(words.slice(0, n).join(" ")).length <= maxLength;
  if (fits(words.length)) return words.length;
  let [lo, hi] = [0, words.length];
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

// One sentence, one call (as an app tags a message; dynamic INT8 quantizes each call with one range).
// Words past the model's length are tagged "O", as codir-edge evaluate scores them.
export async function tagSentence(tagger, text) {
  const words = text.split(" ").filter((w) => w.length);
  const maxLength = tagger.tokenizer.model_max_length ?? Infinity; // the length the export wrote
  const kept = words.slice(0, wordsThatFit(tagger.tokenizer, words, maxLength));
  const tags = Array(words.length).fill("O");
  if (kept.length) {
    const pieces = await tagger(kept.join(" "), { ignore_labels: [] }); // a label for every piece
    const byIndex = new Map(pieces.map((p) => [p.index, p.entity]));
    firstPieces(tagger.tokenizer, kept).forEach((at, i) => {
      if (at >= 0 && byIndex.has(at)) tags[i] = byIndex.get(at);
    });
  }
  return { text, words, tags, entities: strictEntities(tags, words) };
}
