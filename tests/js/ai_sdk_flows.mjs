// Runs one multi-turn chat flow against Athena with the AI SDK's own client code and prints what
// the client ended up with, as one JSON line. Driven by tests/api/ai_sdk.rs.
//
//   node ai_sdk_flows.mjs <package> <base url> <flow> <json args>
//
// <package> is one of the installed `ai` versions (ai-5, ai-6-0-48, ai-6-latest). Flows:
//
// - `chat` {chatId, path, body?, steps}: the SDK's own `AbstractChat` (what `useChat` wraps: the
//   React `Chat` only adds a React-bound state object) runs headless here, with a plain-object
//   `ChatState` and the SDK's `DefaultChatTransport` pointed at `<base url><path>`. Each step is
//   `{"send": text}` (`chat.sendMessage({text})`), `{"edit": text, "user": n}`
//   (`chat.sendMessage({text, messageId: <id of the n-th user message>})`, the client's edit flow)
//   or `{"regenerate": true}` (`chat.regenerate()`). Prints {steps: [{status, error, messages}],
//   requests: [<each JSON body the transport posted>]}.
// - `retry` {chatId, path, messageId, text, body?}: the same submit sent twice through
//   `DefaultChatTransport.sendMessages` (a network retry: same chat id, message id and text), each
//   stream read to the end by `readUIMessageStream` (strict chunk schemas). Prints {attempts:
//   [{message, error, start}]}, `start` being the first chunk of the raw stream.
// - `resume` {chatId, path, text}: a page reload mid-answer. A first chat sends `text` and, once
//   the reply has started, calls `chat.stop()` (which only aborts its fetch: with resumable
//   streams the turn runs on). A second chat (the reloaded page) loads the conversation with
//   `GET /api/conversations/{chatId}`, keeps the stored messages (drops a reply still
//   `status: "streaming"`: the resumed stream brings it whole) and calls `chat.resumeStream()`
//   (the transport's `GET <api>/{chatId}/stream`). Prints {stopped, loaded, resumed, status,
//   error}: the first chat's messages, what the reload loaded, the second chat's messages.
// - `approval` {chatId, path, text, approved, reason?}: a tool call that waits for approval, as a
//   `useChat` page with `sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses`
//   runs it: `chat.sendMessage({text})`, then `chat.addToolApprovalResponse({id, approved,
//   reason})` on the part in state `approval-requested`, which posts the list ending with the
//   assistant message by itself; waits for that second request to end. Prints {asked, final,
//   status, chatError, requests}: the messages after the first reply and at the end.
// - `files` {chatId, path, text, files: [{filename, mediaType, base64}]}: attachments as a browser
//   sends them: each file announced (`POST /api/files`), its upload form posted with `FormData`
//   (the form's fields, then the file) straight to the form's URL (the bucket, or athena-local's
//   own), the upload completed (`POST /api/files/{id}/complete`), then
//   `chat.sendMessage({text, files})` with one `FileUIPart` per file naming the file's URL.
//   Prints {uploads: [{created, posted, completed, file}], messages, status, chatError, requests}.
// - `seed-fetch` {}: seed 000's own call, `fetch('/api/conversations', {method: 'POST', body:
//   JSON.stringify({title: 'Test', model: 'claude-sonnet'})})`, with no content type (so fetch
//   sends `text/plain;charset=UTF-8`). Node's fetch needs an absolute URL, so the path is resolved
//   against <base url>. Prints {status, requestContentType, json}.
const [, , pkg, base, flow, rawArgs] = process.argv;
const args = rawArgs ? JSON.parse(rawArgs) : {};
const { AbstractChat, DefaultChatTransport, readUIMessageStream } = await import(pkg);

const clone = (value) => (value === undefined ? undefined : structuredClone(value));

// The state `useChat` keeps in React, as plain fields (the SDK mutates the streaming message, so
// what is stored is a copy, as React's state does).
class PlainChatState {
  constructor(messages = []) {
    this.status = 'ready';
    this.error = undefined;
    this.messages = clone(messages);
  }
  pushMessage = (message) => {
    this.messages = this.messages.concat(clone(message));
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };
  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), clone(message), ...this.messages.slice(index + 1)];
  };
  snapshot = (value) => clone(value);
}

class HeadlessChat extends AbstractChat {
  constructor(init) {
    super({ ...init, state: new PlainChatState(init.messages) });
  }
}

// A fetch that records each JSON body posted and the raw text of each response.
const requests = [];
const responses = [];
const recordingFetch = async (url, init) => {
  if (init?.body) requests.push(JSON.parse(init.body));
  const response = await fetch(url, init);
  responses.push(response.clone().text());
  return response;
};

const errorText = (error) => (error ? String(error.message ?? error) : null);

async function chatFlow() {
  const chat = new HeadlessChat({
    id: args.chatId,
    transport: new DefaultChatTransport({ api: base + args.path, body: args.body ?? {}, fetch: recordingFetch }),
    onError: () => {},
  });
  const steps = [];
  for (const step of args.steps) {
    if ('send' in step) {
      await chat.sendMessage({ text: step.send });
    } else if ('edit' in step) {
      const user = chat.messages.filter((m) => m.role === 'user')[step.user];
      await chat.sendMessage({ text: step.edit, messageId: user.id });
    } else if ('regenerate' in step) {
      await chat.regenerate();
    } else {
      throw new Error(`unknown step ${JSON.stringify(step)}`);
    }
    steps.push({ status: chat.status, error: errorText(chat.error), messages: clone(chat.messages) });
  }
  return { steps, requests };
}

function firstChunk(sse) {
  const line = sse.split('\n').find((l) => l.startsWith('data: '));
  return line ? JSON.parse(line.slice('data: '.length)) : null;
}

async function retryFlow() {
  const transport = new DefaultChatTransport({ api: base + args.path, body: args.body ?? {}, fetch: recordingFetch });
  const messages = [{ id: args.messageId, role: 'user', parts: [{ type: 'text', text: args.text }] }];
  const attempts = [];
  for (let i = 0; i < 2; i++) {
    let last = null;
    let error = null;
    try {
      const stream = await transport.sendMessages({
        chatId: args.chatId,
        messages,
        trigger: 'submit-message',
        messageId: undefined,
        abortSignal: undefined,
      });
      for await (const message of readUIMessageStream({ stream, onError: () => {}, terminateOnError: true })) {
        last = message;
      }
    } catch (e) {
      error = errorText(e);
    }
    const raw = responses[i] ? await responses[i] : '';
    attempts.push({ message: last, error, start: firstChunk(raw) });
  }
  return { attempts, requests };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const toUiMessage = (m) => ({ id: m.id, role: m.role, parts: [{ type: 'text', text: m.content }] });

async function resumeFlow() {
  const first = new HeadlessChat({
    id: args.chatId,
    // No recording fetch: a recorded copy of an aborted body would reject unobserved.
    transport: new DefaultChatTransport({ api: base + args.path }),
    onError: () => {},
  });
  const sending = first.sendMessage({ text: args.text });
  const started = () => first.messages.some((m) => m.role === 'assistant' && m.parts.some((p) => p.type === 'text' && p.text));
  for (let i = 0; i < 500 && !started(); i++) await sleep(10);
  if (!started()) throw new Error('the reply never started');
  await first.stop();
  await sending;
  const stopped = clone(first.messages);

  const loaded = await (await fetch(`${base}/api/conversations/${args.chatId}`)).json();
  const initial = loaded.messages.filter((m) => m.status !== 'streaming').map(toUiMessage);
  const second = new HeadlessChat({
    id: args.chatId,
    messages: initial,
    transport: new DefaultChatTransport({ api: base + args.path }),
    onError: () => {},
  });
  await second.resumeStream();
  return {
    stopped,
    loaded: loaded.messages,
    resumed: clone(second.messages),
    status: second.status,
    chatError: errorText(second.error),
  };
}

async function approvalFlow() {
  const sdk = await import(pkg);
  const chat = new HeadlessChat({
    id: args.chatId,
    transport: new DefaultChatTransport({ api: base + args.path, fetch: recordingFetch }),
    sendAutomaticallyWhen: sdk.lastAssistantMessageIsCompleteWithApprovalResponses,
    onError: () => {},
  });
  await chat.sendMessage({ text: args.text });
  const asked = clone(chat.messages);
  const part = chat.messages.at(-1)?.parts.find((p) => p.state === 'approval-requested');
  if (!part) throw new Error(`no approval was requested: ${JSON.stringify(asked)}`);
  await chat.addToolApprovalResponse({ id: part.approval.id, approved: args.approved, reason: args.reason });
  // The automatic request starts inside the SDK's job queue; wait for it to be sent and to end.
  for (let i = 0; i < 1000 && (requests.length < 2 || chat.status === 'submitted' || chat.status === 'streaming'); i++) {
    await sleep(10);
  }
  if (requests.length < 2) throw new Error('the approval was never sent');
  return { asked, final: clone(chat.messages), status: chat.status, chatError: errorText(chat.error), requests };
}

async function filesFlow() {
  const uploads = [];
  const files = [];
  for (const f of args.files) {
    const bytes = Buffer.from(f.base64, 'base64');
    const created = await fetch(new URL('/api/files', base), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ filename: f.filename, mediaType: f.mediaType, size: bytes.length }),
    });
    const announced = await created.json();
    if (created.status !== 201) throw new Error(`POST /api/files: ${created.status} ${JSON.stringify(announced)}`);
    const form = new FormData();
    for (const [name, value] of Object.entries(announced.upload.fields)) form.append(name, value);
    form.append('file', new Blob([bytes], { type: f.mediaType }), f.filename);
    const posted = await fetch(announced.upload.url, { method: 'POST', body: form });
    const completed = await fetch(new URL(`/api/files/${announced.file.id}/complete`, base), { method: 'POST' });
    const file = await completed.json();
    uploads.push({ created: announced, posted: posted.status, completed: completed.status, file });
    files.push({ type: 'file', mediaType: file.mediaType, url: file.url, filename: file.filename });
  }
  const chat = new HeadlessChat({
    id: args.chatId,
    transport: new DefaultChatTransport({ api: base + args.path, fetch: recordingFetch }),
    onError: () => {},
  });
  await chat.sendMessage({ text: args.text, files });
  return { uploads, messages: clone(chat.messages), status: chat.status, chatError: errorText(chat.error), requests };
}

async function seedFetch() {
  const url = new URL('/api/conversations', base);
  const init = { method: 'POST', body: JSON.stringify({ title: 'Test', model: 'claude-sonnet' }) };
  const requestContentType = new Request(url, init).headers.get('content-type');
  const res = await fetch(url, init);
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, requestContentType, json, text };
}

const flows = { chat: chatFlow, retry: retryFlow, resume: resumeFlow, approval: approvalFlow, files: filesFlow, 'seed-fetch': seedFetch };
try {
  console.log(JSON.stringify(await flows[flow]()));
} catch (error) {
  console.log(JSON.stringify({ error: errorText(error), stack: String(error?.stack), requests }));
}
