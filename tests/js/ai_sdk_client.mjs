// Sends one chat turn to Athena with the AI SDK's own client code and prints what it assembled.
//
//   node ai_sdk_client.mjs <package> <api url> <chat id> <text> [<json extra body>]
//
// <package> is one of the installed `ai` versions (ai-5, ai-6-0-48, ai-6-latest). The transport is
// the SDK's DefaultChatTransport (what useChat uses) and the message is assembled by
// readUIMessageStream, which validates every chunk against the SDK's strict schemas.
// Prints one JSON line: {"message": <UIMessage>} or {"error": "<message>"}.
const [, , pkg, api, chatId, text, extra] = process.argv;
const { DefaultChatTransport, readUIMessageStream } = await import(pkg);

const transport = new DefaultChatTransport({ api, body: extra ? JSON.parse(extra) : {} });
const messages = [{ id: `user-${chatId}`, role: 'user', parts: [{ type: 'text', text }] }];
let last = null;
try {
  const stream = await transport.sendMessages({
    chatId,
    messages,
    trigger: 'submit-message',
    messageId: undefined,
    abortSignal: undefined,
  });
  for await (const message of readUIMessageStream({
    stream,
    onError: () => {},
    terminateOnError: true,
  })) {
    last = message;
  }
  console.log(JSON.stringify({ message: last }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.message ?? error), partial: last }));
}
