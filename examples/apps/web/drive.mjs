// Open the example page in a real headless Chromium and classify texts there: the browser test's
// driver, and a way to check a bundle in a browser from CI.
//
//   node web/drive.mjs BUNDLE TEXTS.json [--dtype q8|fp32] [--chromium /usr/bin/chromium]
//
// Prints {"rows": [{text, label, score}], "outside": [every request that tried to leave 127.0.0.1]};
// for an embedding bundle (export --task embedding) the rows are {text, embedding}; for a tagger
// (export --task ner) {text, words, tags, entities}.
// Requests to any other host are refused, so the page proves it needs nothing from the network.
import fs from "node:fs";
import { chromium } from "playwright-core";
import { serve } from "./serve.mjs";

const FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"];

export async function drive(bundle, texts, { dtype = "q8", executablePath = "/usr/bin/chromium" } = {}) {
  const server = await serve(bundle);
  const browser = await chromium.launch({ executablePath, args: FLAGS });
  const outside = [];
  try {
    const page = await browser.newPage();
    await page.route("**/*", (route) => {
      const url = new URL(route.request().url());
      if (url.hostname === "127.0.0.1") return route.continue();
      outside.push(url.href);
      return route.abort();
    });
    await page.goto(`http://127.0.0.1:${server.address().port}/?dtype=${dtype}`);
    await page.waitForFunction(() => window.appReady || window.appError, null, { timeout: 120_000 });
    const error = await page.evaluate(() => window.appError);
    if (error) throw new Error(`the page failed to load the bundle: ${error}`);
    const rows = await page.evaluate((t) => (window.embed ?? window.tag ?? window.classify)(t), texts);
    return { rows, outside };
  } finally {
    await browser.close();
    server.close();
  }
}

async function main([bundle, textsFile, ...rest]) {
  if (!bundle || !textsFile) {
    console.error("usage: node drive.mjs BUNDLE TEXTS.json [--dtype q8|fp32] [--chromium PATH]");
    process.exit(2);
  }
  const option = (name, fallback) => (rest.includes(name) ? rest[rest.indexOf(name) + 1] : fallback);
  const texts = JSON.parse(fs.readFileSync(textsFile, "utf8"));
  const result = await drive(bundle, texts, {
    dtype: option("--dtype", "q8"),
    executablePath: option("--chromium", "/usr/bin/chromium"),
  });
  console.log(JSON.stringify(result));
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
