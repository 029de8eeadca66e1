// One chat completion through Lectr with the official Node SDK (npm `openai`), in base_url mode.
//
//   node sdk_client.mjs --base-url http://127.0.0.1:8080/v1 --key lk_... --model gpt-4o
//                       [--stream] [--feature NAME] [--task TASK]
//
// Prints one JSON line: {"content", "model", "chunks", "usage", "sdk"}; on an API error,
// {"error": {"status", "message"}} and exit status 1. Run by tests/test_node_sdk.py.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';

const { values: args } = parseArgs({
  options: {
    'base-url': { type: 'string' },
    key: { type: 'string' },
    model: { type: 'string', default: 'gpt-4o' },
    stream: { type: 'boolean', default: false },
    feature: { type: 'string' },
    task: { type: 'string' },
  },
});
if (!args['base-url'] || !args.key) {
  console.error('usage: node sdk_client.mjs --base-url URL --key LECTR_KEY [--model M] [--stream]');
  process.exit(2);
}

const headers = { 'X-Lectr-Key': args.key };
if (args.feature) headers['X-Lectr-Feature'] = args.feature;
if (args.task) headers['X-Lectr-Task'] = args.task;
const client = new OpenAI({
  baseURL: args['base-url'],
  apiKey: 'sk-client-openai', // the application's own provider key, passed through by Lectr
  defaultHeaders: headers,
  maxRetries: 0,
});
const messages = [{ role: 'user', content: 'Is this message about billing or shipping?' }];
const sdk = JSON.parse(readFileSync(new URL('./node_modules/openai/package.json', import.meta.url))).version;

try {
  let result;
  if (args.stream) {
    const stream = await client.chat.completions.create({
      model: args.model,
      messages,
      stream: true,
      stream_options: { include_usage: true },
    });
    let content = '';
    let chunks = 0;
    let model = null;
    let usage = null;
    for await (const chunk of stream) {
      chunks += 1;
      model = chunk.model;
      content += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    result = { content, model, chunks, usage };
  } else {
    const reply = await client.chat.completions.create({ model: args.model, messages });
    result = { content: reply.choices[0].message.content, model: reply.model, chunks: 0, usage: reply.usage };
  }
  console.log(JSON.stringify({ ...result, sdk, node: process.version }));
} catch (e) {
  if (!(e instanceof OpenAI.APIError)) throw e;
  console.log(JSON.stringify({ error: { status: e.status ?? null, message: e.message }, sdk, node: process.version }));
  process.exit(1);
}
