#!/usr/bin/env node
// node-postgres (npm "pg") named queries through pglease in transaction mode.
//
// Several clients run named queries ({name, text, values}) many times at once
// on a small pool: node-postgres parses a named statement once per connection
// and then only binds it, so pglease must make it exist on whichever server
// the client gets.  Environment: PGL_HOST, PGL_PORT, PGL_USER, PGL_PASSWORD,
// PGL_DB, PGL_POOL_SIZE.  Prints "ok - ..." / "not ok - ..." lines.
'use strict';

const path = require('path');

let failures = 0;
function check(cond, name, diag) {
  if (cond) {
    console.log('ok - ' + name);
  } else {
    failures++;
    console.log('not ok - ' + name);
    if (diag !== undefined) {
      for (const line of String(diag).split('\n')) console.log('# ' + line);
    }
  }
}

async function main() {
  const { Client } = require(path.join(__dirname, 'node_modules', 'pg'));
  const cfg = {
    host: process.env.PGL_HOST,
    port: Number(process.env.PGL_PORT),
    user: process.env.PGL_USER,
    password: process.env.PGL_PASSWORD,
    database: process.env.PGL_DB,
    connectionTimeoutMillis: 10000,
  };
  const poolSize = Number(process.env.PGL_POOL_SIZE || '2');
  const nClients = 5;
  const clients = [];
  for (let i = 0; i < nClients; i++) {
    const c = new Client(cfg);
    await c.connect();
    clients.push(c);
  }

  // Same name everywhere, a different text per client.
  const errors = [];
  const pidsPerClient = clients.map(() => new Set());
  await Promise.all(clients.map(async (c, k) => {
    for (let i = 0; i < 40; i++) {
      try {
        const r = await c.query({
          name: 'q1',
          text: `SELECT $1::int + ${k} AS v, pg_backend_pid() AS pid`,
          values: [i],
        });
        if (r.rows[0].v !== i + k) errors.push(`client ${k} iteration ${i}: ${r.rows[0].v}`);
        pidsPerClient[k].add(r.rows[0].pid);
      } catch (e) {
        errors.push(`client ${k} iteration ${i}: ${e.message}`);
      }
    }
  }));
  check(errors.length === 0,
        `node-pg: named query q1 x40 from ${nClients} clients at once, all results right`,
        errors.slice(0, 5).join('\n'));
  const moved = pidsPerClient.filter((s) => s.size > 1).length;
  check(moved >= 1, `node-pg: named statements used on more than one backend (${moved} clients)`);
  const all = new Set();
  pidsPerClient.forEach((s) => s.forEach((p) => all.add(p)));
  check(all.size >= 1 && all.size <= poolSize,
        `node-pg: at most pool_size=${poolSize} backends (${all.size})`);

  // Inside transactions, with a second named query and an error.
  const errs2 = [];
  await Promise.all(clients.map(async (c, k) => {
    for (let t = 0; t < 10; t++) {
      try {
        await c.query('BEGIN');
        const a = await c.query({ name: 'q2', text: 'SELECT $1::text || $2::text AS s, pg_backend_pid() AS pid', values: ['c' + k, '-' + t] });
        const b = await c.query({ name: 'q1', text: `SELECT $1::int + ${k} AS v, pg_backend_pid() AS pid`, values: [t] });
        await c.query('COMMIT');
        if (a.rows[0].s !== `c${k}-${t}` || b.rows[0].v !== t + k || a.rows[0].pid !== b.rows[0].pid) {
          errs2.push(`client ${k} txn ${t}: ${JSON.stringify([a.rows[0], b.rows[0]])}`);
        }
      } catch (e) {
        errs2.push(`client ${k} txn ${t}: ${e.message}`);
        try { await c.query('ROLLBACK'); } catch (e2) { /* ignore */ }
      }
    }
  }));
  check(errs2.length === 0, 'node-pg: two named queries inside 10 transactions per client, one backend each',
        errs2.slice(0, 5).join('\n'));

  let gotError = null;
  try {
    await clients[0].query({ name: 'q3', text: 'SELECT 10 / $1::int AS d', values: [0] });
  } catch (e) {
    gotError = e;
  }
  check(gotError && gotError.code === '22012', 'node-pg: an error from a named query (22012)');
  const r = await clients[0].query({ name: 'q3', text: 'SELECT 10 / $1::int AS d', values: [5] });
  check(r.rows[0].d === 2, 'node-pg: the same named query works after the error');

  for (const c of clients) await c.end();
  return 0;
}

main().then((code) => process.exit(code)).catch((e) => {
  check(false, 'node-pg: ran without an exception', e && e.stack ? e.stack : e);
  process.exit(0);
});
