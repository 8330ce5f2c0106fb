#!/usr/bin/node
// The Node.js cold-start reference for `athena-bench coldstart`: the smallest possible custom
// runtime loop (no AWS SDK, no runtime interface client), answering every event with `hello`.
// A real Node.js Lambda loads more (the managed runtime's RIC, the AWS SDK v3 clients), so this
// is a lower bound for Node's init and memory.
'use strict';
const http = require('node:http');
const api = process.env.AWS_LAMBDA_RUNTIME_API;
function next() {
  http.get(`http://${api}/2018-06-01/runtime/invocation/next`, (res) => {
    const id = res.headers['lambda-runtime-aws-request-id'];
    res.resume();
    res.on('end', () => {
      const body = JSON.stringify({ statusCode: 200, body: 'hello' });
      const req = http.request(
        `http://${api}/2018-06-01/runtime/invocation/${id}/response`,
        { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (r) => {
          r.resume();
          r.on('end', next);
        },
      );
      req.end(body);
    });
  });
}
next();
