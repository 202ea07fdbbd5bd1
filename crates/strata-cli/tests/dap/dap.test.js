// Drives `strata dap` with VS Code's own DAP test client: breakpoints on a werf.yaml stage
// script line and on a Dockerfile instruction (a cached one), stepping, variables, evaluate,
// runInTerminal, and the build's exit. Run by crates/strata-cli/tests/cli/dap.rs, which makes
// the projects and checks the images after; inputs come from the environment.
'use strict';
const assert = require('assert');
const path = require('path');
const { execFileSync } = require('child_process');
const { DebugClient } = require('@vscode/debugadapter-testsupport');

const STRATA = process.env.STRATA_BIN;
const WERF_DIR = process.env.WERF_DIR;
const DF_DIR = process.env.DF_DIR;
const TIMEOUT = 120000;

/** A client on a fresh `strata dap`, with the reverse requests it got kept in `reverse`. */
async function client() {
  const dc = new DebugClient(STRATA, 'dap', 'strata', { env: process.env }, true);
  dc.defaultTimeout = TIMEOUT;
  dc.reverse = [];
  const dispatch = dc.dispatch.bind(dc);
  dc.dispatch = (body) => {
    const message = JSON.parse(body);
    if (message.type === 'request') dc.reverse.push(message);
    dispatch(body);
  };
  await dc.start();
  return dc;
}

async function variables(dc, scope) {
  const frames = await dc.stackTraceRequest({ threadId: 1 });
  const scopes = await dc.scopesRequest({ frameId: frames.body.stackFrames[0].id });
  const found = scopes.body.scopes.find((s) => s.name === scope);
  assert.ok(found, `no scope ${scope}: ${JSON.stringify(scopes.body)}`);
  const vars = await dc.variablesRequest({ variablesReference: found.variablesReference });
  return Object.fromEntries(vars.body.variables.map((v) => [v.name, v.value]));
}

async function evaluate(dc, expression) {
  const response = await dc.evaluateRequest({ expression, context: 'repl', frameId: 1 });
  return response.body.result;
}

async function exited(dc) {
  // Both at once: the two events come in one read.
  const [event] = await Promise.all([dc.waitForEvent('exited'), dc.waitForEvent('terminated')]);
  return event.body.exitCode;
}

async function werf() {
  const dc = await client();
  const config = path.join(WERF_DIR, 'werf.yaml');
  const done = exited(dc);
  // Line 9: the install stage's second line.
  await dc.hitBreakpoint({ dir: WERF_DIR }, { path: config, line: 9 });
  const stack = await dc.stackTraceRequest({ threadId: 1 });
  const [step, stage, image] = stack.body.stackFrames;
  assert.strictEqual(step.name, 'echo "$X $Y $(pwd)" > /app/one');
  assert.strictEqual(stage.name, 'stage install');
  assert.strictEqual(stage.source.path, config);
  assert.strictEqual(stage.line, 7);
  assert.match(image.name, /^image app/);
  const threads = await dc.threadsRequest();
  assert.deepStrictEqual(threads.body.threads, [{ id: 1, name: 'build' }]);
  // Before the line: the first one ran (its cd and export are in the environment).
  let env = await variables(dc, 'Environment');
  assert.strictEqual(env.PWD, '/app');
  assert.strictEqual(env.Y, 'exp');
  assert.strictEqual(await evaluate(dc, 'cat /app/base; ls /app'), 'base\nbase');
  // One line further.
  await Promise.all([dc.nextRequest({ threadId: 1 }), dc.assertStoppedLocation('step', { path: config, line: 10 })]);
  assert.strictEqual(await evaluate(dc, 'cat /app/one'), 'unexported exp /app');
  const files = await variables(dc, 'Files changed');
  assert.strictEqual(files['/app/one'], 'added');
  // A shell for the editor's terminal: run what it asks for, as the terminal would.
  assert.match(await evaluate(dc, 'shell'), /opens in the terminal/);
  const terminal = dc.reverse.find((r) => r.command === 'runInTerminal');
  assert.ok(terminal, 'no runInTerminal request');
  const [program, ...args] = terminal.arguments.args;
  const out = execFileSync(program, args, { input: 'cat /app/one; echo shell-$((6*7))\n', env: process.env });
  assert.match(out.toString(), /unexported exp \/app\nshell-42/);
  // stepIn is a step too; then on to the end.
  await Promise.all([dc.stepInRequest({ threadId: 1 }), dc.assertStoppedLocation('step', { path: config, line: 11 })]);
  await dc.continueRequest({ threadId: 1 });
  assert.strictEqual(await done, 0);
  await dc.stop();
}

async function dockerfile() {
  const dc = await client();
  const file = path.join(DF_DIR, 'Dockerfile');
  const done = exited(dc);
  const launch = {
    dockerfile: file,
    context: DF_DIR,
    buildArgs: { GREETING: 'hi' },
    args: ['-t', 'df'],
    stopOnEntry: true,
  };
  await Promise.all([
    dc.configurationSequence(),
    dc.launch(launch),
    dc.assertStoppedLocation('entry', {}),
  ]);
  // Line 5: a RUN the store has cached.
  const set = await dc.setBreakpointsRequest({ source: { path: file }, breakpoints: [{ line: 5 }] });
  assert.strictEqual(set.body.breakpoints[0].verified, true);
  await Promise.all([dc.continueRequest({ threadId: 1 }), dc.assertStoppedLocation('breakpoint', { path: file, line: 5 })]);
  assert.strictEqual(await evaluate(dc, 'cat /w/two'), 'hi blue');
  const args = await variables(dc, 'Build args');
  assert.strictEqual(args.GREETING, 'hi');
  const mounts = await variables(dc, 'Mounts');
  assert.ok(Object.keys(mounts).includes('/.strata/toolbox'), JSON.stringify(mounts));
  await dc.continueRequest({ threadId: 1 });
  assert.strictEqual(await done, 0);
  await dc.stop();
}

(async () => {
  await werf();
  console.log('dap: werf.yaml ok');
  await dockerfile();
  console.log('dap: ok');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
