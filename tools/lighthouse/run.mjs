/*
 * Lighthouse on one page of the chat, in the Chromium at CHROME_PATH: accessibility and best
 * practices. With a cookie ("name=value"), it is put into the browser before the page is
 * loaded, so the page and its WebSocket are signed in (Lighthouse's extra headers reach the
 * page's requests but not its socket). Writes <out>.report.json and <out>.report.html.
 *   node run.mjs <url> <out> [cookie]
 */
import fs from "node:fs";
import lighthouse from "lighthouse";
import puppeteer from "puppeteer-core";

const [url, out, cookie] = process.argv.slice(2);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROME_PATH || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--lang=en-US"],
});
try {
  const page = await browser.newPage();
  if (cookie) {
    const at = cookie.indexOf("=");
    await page.setCookie({ name: cookie.slice(0, at), value: cookie.slice(at + 1), url });
  }
  const result = await lighthouse(
    url,
    {
      output: ["json", "html"],
      onlyCategories: ["accessibility", "best-practices"],
      logLevel: "error",
      // Keep the session cookie: a storage reset would sign the page out.
      disableStorageReset: Boolean(cookie),
    },
    undefined,
    page
  );
  fs.writeFileSync(`${out}.report.json`, result.report[0]);
  fs.writeFileSync(`${out}.report.html`, result.report[1]);
} finally {
  await browser.close();
}
