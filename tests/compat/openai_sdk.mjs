// The official OpenAI Node SDK (npm package `openai`, a client nobody here
// wrote) against concur-fake-llm: a proper completion, a 429 the SDK retries
// to success honouring retry-after-ms, an error it surfaces, the model list,
// and a streamed completion (stream: true) read through the SDK's stream.
//
//   node tests/compat/openai_sdk.mjs /path/to/concur-fake-llm
//
// Exits non-zero, with a message saying why, on any failure, including a
// missing `openai` package (installed by cmake/install-deps.sh).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const serverPath = process.argv[2];
if (!serverPath) {
  console.error('usage: node openai_sdk.mjs /path/to/concur-fake-llm');
  process.exit(2);
}

let OpenAI;
try {
  ({ default: OpenAI } = await import('openai'));
} catch (e) {
  console.error(
    'FAIL: the npm package "openai" is not installed in tests/compat/node_modules ' +
      '(run cmake/install-deps.sh, which runs npm ci --prefix tests/compat): ' + e.message);
  process.exit(1);
}

const RETRY_AFTER_MS = 300;

// Starts the server on a free port and resolves with its base URL.
function startServer() {
  const child = spawn(
    serverPath,
    ['--port', '0', '--latency', '20ms', '--retry-after-ms', String(RETRY_AFTER_MS)],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error('concur-fake-llm did not start in 10 s')), 10000);
    child.on('error', (e) => reject(new Error(`cannot run ${serverPath}: ${e.message}`)));
    child.on('exit', (code) => reject(new Error(`concur-fake-llm exited early (${code})`)));
    lines.on('line', (line) => {
      const m = /listening on (\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve({ child, baseURL: m[1] });
      }
    });
  });
}

const { child, baseURL } = await startServer();
const statsURL = baseURL.replace(/\/v1$/, '/stats');
const client = new OpenAI({ baseURL, apiKey: 'sk-concur-test', maxRetries: 2 });

const checks = [];
const check = (name, fn) => checks.push({ name, fn });

check('a chat completion has the OpenAI shape', async () => {
  const r = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [
      { role: 'system', content: "Translate the user's text into Japanese." },
      { role: 'user', content: 'Hello, how are you today?' },
    ],
  });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, 'gpt-4o-mini');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, '「Hello, how are you today?」の日本語訳');
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

check('a 429 is retried by the SDK, honouring retry-after-ms, to success', async () => {
  const before = (await (await fetch(statsURL)).json()).by_status['429'] ?? 0;
  const prompt = 'Retry me, please. [[fault:429:2]]';
  const t0 = performance.now();
  const r = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: prompt }],
  });
  const elapsed = performance.now() - t0;
  assert.equal(r.choices[0].message.content, `「${prompt}」の日本語訳`);
  const after = (await (await fetch(statsURL)).json()).by_status['429'] ?? 0;
  assert.equal(after - before, 2, 'the server should have refused twice before answering');
  assert.ok(elapsed >= 2 * RETRY_AFTER_MS * 0.9,
    `two waits of retry-after-ms=${RETRY_AFTER_MS} should take >= ${2 * RETRY_AFTER_MS} ms, took ${elapsed.toFixed(0)}`);
});

check('a 429 past max_retries becomes a RateLimitError with the error body', async () => {
  const strict = new OpenAI({ baseURL, apiKey: 'sk-concur-test', maxRetries: 0 });
  await assert.rejects(
    strict.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'Always refused [[fault:429]]' }],
    }),
    (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, `got ${e?.constructor?.name}: ${e?.message}`);
      assert.equal(e.status, 429);
      assert.equal(e.code, 'rate_limit_exceeded');
      return true;
    });
});

check('a streamed completion arrives in chunks that reassemble to the reply', async () => {
  const prompt = 'Stream this sentence to me, piece by piece.';
  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: prompt }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let pieces = 0;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    if (choice.delta?.content) {
      text += choice.delta.content;
      pieces += 1;
    }
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  assert.equal(text, `「${prompt}」の日本語訳`);
  assert.ok(pieces > 3, `expected several content chunks, got ${pieces}`);
  assert.equal(finish, 'stop');
  assert.ok(usage && usage.total_tokens === usage.prompt_tokens + usage.completion_tokens);
});

check('the model list is served', async () => {
  const models = [];
  for await (const m of client.models.list()) models.push(m.id);
  assert.deepEqual(models, ['concur-fake-llm']);
});

let failed = 0;
for (const { name, fn } of checks) {
  try {
    await fn();
    console.log(`ok   - ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL - ${name}\n       ${e.stack ?? e}`);
  }
}
child.removeAllListeners('exit');
child.kill('SIGTERM');
console.log(`${checks.length - failed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
