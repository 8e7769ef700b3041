// Serve the example page, transformers.js, onnxruntime-web's wasm files and one bundle on
// 127.0.0.1, the layout app.js expects:
//   /            this folder (index.html, app.js)
//   /transformers/  @huggingface/transformers/dist
//   /ort/           onnxruntime-web/dist (the .wasm runtime)
//   /models/bundle/ the bundle, as exported
//
//   node web/serve.mjs BUNDLE [--port 8000]
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = path.join(here, "..", "node_modules");
const TYPES = {
  ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json",
  ".wasm": "application/wasm", ".txt": "text/plain",
};

export function serve(bundle, port = 0) {
  const roots = [
    ["/transformers/", path.join(modules, "@huggingface", "transformers", "dist")],
    ["/ort/", path.join(modules, "onnxruntime-web", "dist")],
    ["/models/bundle/", path.resolve(bundle)],
    ["/", here],
  ];
  const server = http.createServer((request, response) => {
    const url = decodeURIComponent(new URL(request.url, "http://127.0.0.1").pathname);
    const [prefix, root] = roots.find(([p]) => url.startsWith(p));
    const file = path.join(root, url.slice(prefix.length) || "index.html");
    if (!file.startsWith(root + path.sep) && file !== root) {
      response.writeHead(403).end();
      return;
    }
    fs.readFile(file, (error, data) => {
      if (error) {
        response.writeHead(404).end();
        return;
      }
      response.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" });
      response.end(data);
    });
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

async function main([bundle, ...rest]) {
  if (!bundle || !fs.existsSync(path.join(bundle, "config.json"))) {
    console.error("usage: node serve.mjs BUNDLE [--port 8000]  (BUNDLE: a folder written by codir-edge export)");
    process.exit(2);
  }
  const port = rest[0] === "--port" ? Number(rest[1]) : 8000;
  const server = await serve(bundle, port);
  console.log(`open http://127.0.0.1:${server.address().port}/`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
