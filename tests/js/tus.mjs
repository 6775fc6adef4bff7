// Resumable uploads through the pinned tus-js-client (run by tests/api/resumable.rs).
//
// MODELHUB_TUS_A and MODELHUB_TUS_B are two replicas of one hub; MODELHUB_TUS_TOKEN an account's
// token on both; MODELHUB_TUS_FILE the file to send. The upload starts on A and is aborted
// half-way, its request cut; a new client that knows only the upload's URL resumes it on B from
// the offset B reports, and the finished upload is taken into a model by its id. Prints the
// version's SHA-256.
import fs from "node:fs";
import path from "node:path";
import * as tus from "tus-js-client";

const { MODELHUB_TUS_A: A, MODELHUB_TUS_B: B, MODELHUB_TUS_TOKEN: TOKEN, MODELHUB_TUS_FILE: FILE } =
  process.env;
const headers = { Authorization: `Bearer ${TOKEN}` };
const size = fs.statSync(FILE).size;
const chunkSize = 256 * 1024;

function fail(message) {
  console.error(message);
  process.exit(1);
}

// First client: on A, aborted once half the file is accepted.
const stopped = await new Promise((resolve, reject) => {
  const upload = new tus.Upload(fs.createReadStream(FILE), {
    endpoint: `${A}/uploads`,
    headers,
    chunkSize,
    retryDelays: null,
    metadata: { filename: path.basename(FILE) },
    onChunkComplete(_chunk, accepted) {
      if (accepted >= size / 2) {
        upload.abort().then(() => resolve({ url: upload.url, accepted }), reject);
      }
    },
    onSuccess: () => reject(new Error("the upload finished although it was aborted")),
    onError: reject,
  });
  upload.start();
}).catch((error) => fail(`first client: ${error}`));
if (!(stopped.accepted > 0 && stopped.accepted < size)) fail(`stopped at ${stopped.accepted}`);
const id = new URL(stopped.url).pathname.split("/").filter(Boolean).pop();

// Second client, on B: asks where the upload stands, then sends the rest.
let reported = null;
await new Promise((resolve, reject) => {
  const upload = new tus.Upload(fs.createReadStream(FILE), {
    uploadUrl: `${B}/uploads/${id}`,
    headers,
    chunkSize,
    retryDelays: null,
    onAfterResponse(request, response) {
      if (request.getMethod() === "HEAD") reported = Number(response.getHeader("Upload-Offset"));
    },
    onSuccess: resolve,
    onError: reject,
  });
  upload.start();
}).catch((error) => fail(`second client: ${error}`));
if (reported !== stopped.accepted) fail(`B reported offset ${reported}, A had ${stopped.accepted}`);

const query =
  "mutation($input: CreateModelInput!, $files: [FileUpload!]) " +
  "{ createModel(input: $input, files: $files) { currentVersion { sha256 sizeBytes } } }";
const response = await fetch(`${B}/graphql`, {
  method: "POST",
  headers: { ...headers, "Content-Type": "application/json" },
  body: JSON.stringify({
    query,
    variables: {
      input: { name: "sent-with-tus-js-client", framework: "PYTORCH", version: "1.0.0" },
      files: [{ path: path.basename(FILE), uploadId: id }],
    },
  }),
});
const answer = await response.json();
if (answer.errors) fail(`createModel failed: ${JSON.stringify(answer.errors)}`);
const version = answer.data.createModel.currentVersion;
if (version.sizeBytes !== size) fail(`size ${version.sizeBytes}, sent ${size}`);
console.log(version.sha256);
