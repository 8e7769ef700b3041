"""The strings-in graph: raw text in, logits out, with the tokenizer rebuilt from onnxruntime-extensions
operators (build), its rules per tokenizer kind (rules, template, unigram), the graph helpers (graph) and the
check against the real tokenizer (check)."""
