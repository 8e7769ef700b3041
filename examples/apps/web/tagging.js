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

// One sentence, one call (as an app tags a message; dynamic INT8 quantizes each call with one range).
export async function tagSentence(tagger, text) {
  const words = text.split(" ").filter((w) => w.length);
  const pieces = await tagger(words.join(" "), { ignore_labels: [] }); // a label for every piece
  const byIndex = new Map(pieces.map((p) => [p.index, p.entity]));
  const tags = firstPieces(tagger.tokenizer, words).map((at) => (at >= 0 && byIndex.has(at) ? byIndex.get(at) : "O"));
  return { text, words, tags, entities: strictEntities(tags, words) };
}
