// A front-end's Apollo Client stack against a running hub (run by tests/api/apollo.rs):
// @apollo/client with apollo-upload-client for HTTP (the GraphQL multipart request spec),
// automatic persisted queries (hashes sent first, queries over GET), and graphql-ws over
// WebSocket for subscriptions, split the way Apollo's documentation does it.
//
// MODELHUB_URL is the hub; MODELHUB_TOKEN an account's token; MODELHUB_FILE and MODELHUB_FILE2
// two model files.
// Uploads five models, lists them two at a time by cursor, follows a model's events while a
// second version is uploaded, and prints what it saw as one JSON object.
import crypto from "node:crypto";
import fs from "node:fs";
import { ApolloClient, ApolloLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import UploadHttpLink from "apollo-upload-client/UploadHttpLink.mjs";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const { MODELHUB_URL: HUB, MODELHUB_TOKEN: TOKEN, MODELHUB_FILE: FILE, MODELHUB_FILE2: FILE2 } =
  process.env;
const bytes = fs.readFileSync(FILE);

// Every HTTP request the client makes, for the test to check the persisted-query protocol.
const requests = [];
async function recordingFetch(uri, options) {
  const response = await fetch(uri, options);
  const body = await response.clone().text();
  requests.push({
    method: options.method ?? "GET",
    multipart: options.body instanceof FormData,
    sentQuery:
      options.method === "GET"
        ? new URL(uri).searchParams.has("query")
        : options.body instanceof FormData
          ? JSON.parse(options.body.get("operations")).query !== undefined
          : JSON.parse(options.body).query !== undefined,
    missed: body.includes("PersistedQueryNotFound"),
    status: response.status,
  });
  return response;
}

const http = new PersistedQueryLink({
  sha256: (text) => crypto.createHash("sha256").update(text).digest("hex"),
  useGETForHashedQueries: true,
}).concat(
  new UploadHttpLink({
    uri: `${HUB}/graphql`,
    headers: { authorization: `Bearer ${TOKEN}` },
    fetch: recordingFetch,
  }),
);
const sockets = createClient({
  url: `${HUB.replace(/^http/, "ws")}/graphql`,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${TOKEN}` },
});
const link = ApolloLink.split(
  ({ query }) => {
    const definition = getMainDefinition(query);
    return definition.kind === "OperationDefinition" && definition.operation === "subscription";
  },
  new GraphQLWsLink(sockets),
  http,
);
const client = new ApolloClient({ link, cache: new InMemoryCache() });

const CREATE = gql`
  mutation Create($input: CreateModelInput!, $file: Upload!) {
    createModel(input: $input, file: $file) {
      id
      name
      currentVersion { id sha256 sizeBytes inspection { status } }
    }
  }
`;
const PAGE = gql`
  query Page($after: String) {
    models(first: 2, after: $after, sort: { field: NAME, direction: ASC }) {
      totalCount
      edges { cursor node { id name } }
      pageInfo { hasNextPage endCursor }
    }
  }
`;
const INSPECTED = gql`
  subscription Inspected($id: ID!) {
    versionInspected(versionId: $id) { id inspection { status } }
  }
`;
const EVENTS = gql`
  subscription Events($id: ID!) {
    modelEvents(modelId: $id) { type version { id version inspection { status } } }
  }
`;
const ADD_VERSION = gql`
  mutation AddVersion($id: ID!, $file: Upload!) {
    createModelVersion(modelId: $id, input: { version: "2.0.0" }, file: $file) { id }
  }
`;

function fail(message) {
  console.error(message);
  process.exit(1);
}

/** The first `n` values a subscription yields. */
function take(observable, n) {
  return new Promise((resolve, reject) => {
    const seen = [];
    const subscription = observable.subscribe({
      next(result) {
        if (result.error) return reject(result.error);
        seen.push(result.data);
        if (seen.length === n) {
          subscription.unsubscribe();
          resolve(seen);
        }
      },
      error: reject,
    });
    setTimeout(() => reject(new Error(`only ${seen.length} of ${n} events in 20 s`)), 20000).unref();
  });
}

try {
  const created = [];
  for (const name of ["apollo-a", "apollo-b", "apollo-c", "apollo-d", "apollo-e"]) {
    const file = new File([bytes], "model.safetensors");
    const { data } = await client.mutate({
      mutation: CREATE,
      variables: { input: { name, framework: "pytorch", version: "1.0.0" }, file },
    });
    created.push(data.createModel);
  }

  const pages = [];
  let after = null;
  for (;;) {
    const { data } = await client.query({ query: PAGE, variables: { after }, fetchPolicy: "network-only" });
    pages.push(data.models.edges.map((edge) => edge.node.name));
    if (!data.models.pageInfo.hasNextPage) break;
    after = data.models.pageInfo.endCursor;
  }
  // The first page again: by its hash alone, over GET.
  await client.query({ query: PAGE, variables: { after: null }, fetchPolicy: "network-only" });

  const first = created[0];
  const [inspected] = await take(
    client.subscribe({ query: INSPECTED, variables: { id: first.currentVersion.id } }),
    1,
  );
  // Events while a second version is uploaded: created, then inspected.
  const events = take(client.subscribe({ query: EVENTS, variables: { id: first.id } }), 2);
  // Subscriptions start when the server first polls them; a later one that needs the
  // database to answer is answered after a round that polled the first, so the upload waits
  // for its answer.
  await take(client.subscribe({ query: INSPECTED, variables: { id: first.currentVersion.id } }), 1);
  const added = await client.mutate({
    mutation: ADD_VERSION,
    variables: { id: first.id, file: new File([fs.readFileSync(FILE2)], "model.safetensors") },
  });
  const followed = await events;

  console.log(
    JSON.stringify({
      created,
      pages,
      inspected: inspected.versionInspected,
      added: added.data.createModelVersion.id,
      events: followed.map((e) => e.modelEvents),
      requests,
    }),
  );
  await sockets.dispose();
  process.exit(0);
} catch (error) {
  fail(`apollo client: ${error?.stack ?? error}\ncause: ${error?.cause?.stack ?? error?.cause}\nrequests: ${JSON.stringify(requests)}`);
}
