// Creates one client in all five providers through openapi-fetch, typed by openapi-typescript from
// openapi/openapi.json, and reads the 207 with those types (checked by tsc --strict).
//
//   npx openapi-typescript openapi/openapi.json -o schema.d.ts && npx tsc && \
//     GATEWAY_URL=http://127.0.0.1:8080 TOKEN=... node dist/onboard.js
//
// Exits non-zero unless every provider answers `created` with an id, the same request with
// `if_exists: "adopt"` answers `existing` with the same ids, a body missing a required field is a
// typed 422 problem pointing at it, and the request sent with `Prefer: respond-async` is a typed 202
// operation that reads back `succeeded`.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type CreateClientRequest = components["schemas"]["CreateClientRequest"];
type MultiStatus = components["schemas"]["MultiStatus"];
type TargetStatus = components["schemas"]["TargetStatus"];
type Provider = keyof components["schemas"]["TargetsSchema"];

const PROVIDERS: readonly Provider[] = ["lucca", "clockify", "plusvibe", "chatdash", "missionx"];

function fail(message: string): never {
  console.error(`typescript client: ${message}`);
  process.exit(1);
}

function request(suffix: string, ifExists: "fail" | "adopt"): CreateClientRequest {
  return {
    client: {
      name: `Nova Consulting ${suffix}`,
      code: `NOVA-${suffix}`,
      external_id: `crm-${suffix}`,
      email: "billing@nova.example",
      language: "en",
      contact: { first_name: "Nova", last_name: "Smith", email: `nova.${suffix}@nova.example` },
    },
    targets: {
      lucca: { organization_id: 12, owner_id: 7 },
      clockify: { workspace_id: "64a687e29ae1f428e7ebe303" },
      plusvibe: {
        workspace_id: "65f99a0dd96fae8ab61130c0",
        workspaces: [{ id: "65f99a0dd96fae8ab61130c0", permission: "FULL_ACCESS" }],
      },
      chatdash: { member: { login_id: `nova-${suffix}`, name: "Nova Smith" } },
      missionx: { departments: ["6650c0ffee0000000000abcd"] },
    },
    if_exists: ifExists,
  };
}

function ids(answer: MultiStatus, expected: TargetStatus): Record<string, string> {
  const found: Record<string, string> = {};
  for (const provider of PROVIDERS) {
    const result = answer.results[provider];
    if (result === undefined) fail(`${provider}: no result`);
    if (result.status !== expected) {
      fail(`${provider}: expected ${expected}, got ${result.status}: ${JSON.stringify(result.error)}`);
    }
    const id = result.provider_client_id;
    if (typeof id !== "string" || id === "") fail(`${provider}: no provider_client_id`);
    found[provider] = id;
  }
  return found;
}

async function main(): Promise<void> {
  const baseUrl = process.env.GATEWAY_URL ?? fail("GATEWAY_URL is not set");
  const token = process.env.TOKEN ?? fail("TOKEN is not set");
  const client = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });
  const suffix = crypto.randomUUID().slice(0, 8).toUpperCase();

  const first = await client.POST("/clients", {
    params: { header: { "Idempotency-Key": `onboard-${suffix}` } },
    body: request(suffix, "fail"),
  });
  // A 2xx is the 207 (a synchronous answer) or an operation (200/202 with `Prefer`).
  if (first.response.status !== 207 || first.data === undefined || !("outcome" in first.data)) {
    fail(`expected 207, got ${first.response.status}: ${JSON.stringify(first.error)}`);
  }
  if (first.data.outcome !== "succeeded" || first.data.dry_run) {
    fail(`expected outcome succeeded, got ${first.data.outcome}`);
  }
  const created = ids(first.data, "created");

  const again = await client.POST("/clients", { body: request(suffix, "adopt") });
  if (again.data === undefined || !("outcome" in again.data)) {
    fail(`expected 207 on adopt, got ${again.response.status}`);
  }
  const adopted = ids(again.data, "existing");
  if (JSON.stringify(adopted) !== JSON.stringify(created)) {
    fail(`adopt found other clients: ${JSON.stringify(adopted)} != ${JSON.stringify(created)}`);
  }

  const bad = request(suffix, "fail");
  bad.client.name = "";
  const refused = await client.POST("/clients", { body: bad });
  if (refused.error === undefined || refused.response.status !== 422) {
    fail(`expected a 422 problem, got ${refused.response.status}`);
  }
  const pointers = (refused.error.errors ?? []).map((e) => e.pointer);
  if (!pointers.includes("/client/name")) fail(`expected /client/name among ${pointers.join(", ")}`);

  const later = await client.POST("/clients", {
    params: { header: { Prefer: "respond-async" } },
    body: request(`${suffix}-ASYNC`, "fail"),
  });
  if (later.response.status !== 202 || later.data === undefined || !("state" in later.data)) {
    fail(`expected 202, got ${later.response.status}`);
  }
  const operationId = later.data.operation_id;
  let state = later.data.state;
  for (let i = 0; i < 100 && state !== "succeeded"; i++) {
    const read = await client.GET("/clients/operations/{operation_id}", {
      params: { path: { operation_id: operationId } },
    });
    if (read.data === undefined) fail(`expected the operation, got ${read.response.status}`);
    state = read.data.state;
    if (read.data.done) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (state !== "succeeded") fail(`expected the operation succeeded, got ${state}`);

  console.log(`typescript client: created and adopted in ${PROVIDERS.length} providers: ${JSON.stringify(created)}; an operation succeeded`);
}

await main();
