// Uses the TypeScript types that openapi-typescript generated from the served OpenAPI document
// (schema.d.ts) with openapi-fetch against a running Clokio: the calls an integrator makes first.
// Compiled by tsc in strict mode, so a call the document does not allow fails the test before
// anything runs. Environment as in ../python/exercise.py. Run by tests/it/clients.rs.

import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type ErrorEnvelope = components["schemas"]["ErrorEnvelope"];

function check(condition: boolean, what: unknown): asserts condition {
  if (!condition) {
    throw new Error(`unexpected: ${JSON.stringify(what)}`);
  }
}

const env = (name: string): string => {
  const value = process.env[name];
  check(value !== undefined, name);
  return value;
};

const client = (key: string) =>
  createClient<paths>({ baseUrl: env("CLOKIO_URL"), headers: { "X-API-Key": key } });

const api = client(env("CLOKIO_API_KEY"));
const today = env("CLOKIO_TODAY");

// A location and an employee.
{
  const { data, response } = await api.POST("/api/v1/locations", {
    body: { name: "Ts Office", latitude: 48.8566, longitude: 2.3522, radius_meters: 150 },
  });
  check(response.status === 201 && data?.data.name === "Ts Office", data);
  console.log("location created");
}
{
  const { data, response } = await api.POST("/api/v1/employees", {
    body: { name: "Grace Script", email: "grace@ts.example", location: "Ts Office", employee_code: "TS-1" },
  });
  check(response.status === 201 && data?.data.employee_code === "TS-1", data);
  console.log("employee created");
}

// Clock in and out.
{
  const inn = await api.POST("/api/v1/attendance/clock-in", { body: { nip: "TS-1" } });
  check(inn.response.status === 200 && inn.data?.data.employee_name === "Grace Script", inn.data);
  const out = await api.POST("/api/v1/attendance/clock-out", { body: { nip: "TS-1" } });
  check(out.response.status === 200, out.error);
  console.log("clocked in and out");
}

// The daily report and the monthly summary.
{
  const daily = await api.GET("/api/v1/attendance/daily", { params: { query: { date: today } } });
  check(daily.data?.data.map((r) => r.nip).join() === "TS-1", daily.data);
  const summary = await api.GET("/api/v1/attendance/summary", {
    params: { query: { month: today.slice(5, 7), year: today.slice(0, 4) } },
  });
  // The document gives the summary two media types (JSON, and CSV with `format=csv`).
  const rows = typeof summary.data === "object" ? summary.data.data : [];
  check(rows.some((row) => row.nip === "TS-1"), summary.data);
  console.log("daily report and monthly summary read");
}

// Page through the employees, one at a time, with the total from X-Total-Count.
{
  for (const n of [2, 3, 4]) {
    const { response } = await api.POST("/api/v1/employees", {
      body: { name: `Ts ${n}`, email: `ts${n}@ts.example`, location: "Ts Office", employee_code: `TS-${n}` },
    });
    check(response.status === 201, n);
  }
  const codes: string[] = [];
  let total = 0;
  for (let page = 1; ; page++) {
    const { data, response } = await api.GET("/api/v1/employees", {
      params: { query: { page, per_page: 1 } },
    });
    check(data !== undefined, response.status);
    total = Number(response.headers.get("x-total-count"));
    codes.push(...data.data.map((e) => e.employee_code));
    if (!response.headers.get("link")?.includes('rel="next"')) {
      break;
    }
  }
  check(total === 4 && codes.join() === "TS-1,TS-2,TS-3,TS-4", { total, codes });
  console.log(`paged through ${total} employees`);
}

// A 422 and a 429 through the generated error type.
{
  const { error, response } = await api.POST("/api/v1/employees", {
    body: { name: "No Place", email: "np@ts.example", location: "Nowhere" },
  });
  const refused: ErrorEnvelope | undefined = error;
  check(response.status === 422 && refused?.message === "The selected location is invalid", error);
  console.log(`422: ${refused.message}`);

  const limited = client(env("CLOKIO_LIMITED_KEY"));
  let last: ErrorEnvelope | undefined;
  let status = 0;
  let retryAfter = 0;
  for (let i = 0; i < 1000 && status !== 429; i++) {
    const res = await limited.GET("/api/v1/employees");
    status = res.response.status;
    last = res.error;
    retryAfter = Number(res.response.headers.get("retry-after"));
  }
  check(status === 429 && last !== undefined && retryAfter >= 1, { status, last });
  console.log(`429: ${last.message}`);
}
console.log("typescript client: ok");
