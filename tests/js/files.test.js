import assert from "node:assert/strict";
import { test } from "node:test";

import { filesSummary, isPicture, sizeText, uploadErrorText, uploadMayRetry } from "../../static/messaging/text/files.js";
import { previewText } from "../../static/messaging/state/conversations.js";
import { alice, bob, direct, message } from "./helpers.js";

const picture = { name: "cat.jpg", content_type: "image/jpeg", thumbnail_url: "/t/1", url: "/f/1" };
const pdf = { name: "plan.pdf", content_type: "application/pdf", thumbnail_url: null, url: "/f/2" };

test("sizes read the way people read them", () => {
  assert.equal(sizeText(1), "1 byte");
  assert.equal(sizeText(999), "999 bytes");
  assert.equal(sizeText(2048), "2 KB");
  assert.equal(sizeText(3_456_789), "3.5 MB");
  assert.equal(sizeText(25_000_000), "25 MB");
});

test("a picture is a file the server decoded and made a thumbnail of; an SVG is a file", () => {
  assert.equal(isPicture(picture), true);
  assert.equal(isPicture(pdf), false);
  assert.equal(isPicture({ name: "x.svg", content_type: "image/svg+xml", thumbnail_url: null }), false);
});

test("a message of files only says what it holds in the inbox", () => {
  assert.equal(filesSummary([picture]), "Photo");
  assert.equal(filesSummary([pdf]), "File: plan.pdf");
  assert.equal(filesSummary([picture, picture]), "2 photos");
  assert.equal(filesSummary([picture, pdf]), "2 files");
  const conv = direct({ last_message: message({ body: "", sender: bob, attachments: [picture] }) });
  assert.equal(previewText(alice, conv), "Photo");
});

test("a failed upload says why, in the server's words when it gave them", () => {
  assert.equal(uploadErrorText({ status: 413, data: { detail: "files are limited to 25 MB" } }, "big.mov"), "Couldn’t upload “big.mov”: files are limited to 25 MB");
  assert.equal(uploadErrorText({ status: 400, data: { detail: "the file is empty" } }, "e.txt"), "Couldn’t upload “e.txt”: the file is empty");
  assert.match(uploadErrorText({ status: 0, data: null }, "a.png"), /connection was lost/);
  assert.equal(uploadMayRetry({ status: 0 }), true);
  assert.equal(uploadMayRetry({ status: 503 }), true);
  assert.equal(uploadMayRetry({ status: 413 }), false);
});
