// The same tool-calling request answered whole and streamed; the stream reassembled twice:
// by the SDK's helper (finalChatCompletion) and by hand, as apps that read chunks do.
import { answer, gateway, input } from "./client.mjs";

const { model, tools, messages } = input();
const client = gateway();
const whole = await client.chat.completions.create({ model, messages, tools });

const stream = client.chat.completions.stream({
  model,
  messages,
  tools,
  stream_options: { include_usage: true },
});
const helper = await stream.finalChatCompletion();

const calls = []; // by index: the opening delta names the call, the rest add argument pieces
let finish = null;
let usage = null;
const chunks = await client.chat.completions.create({ model, messages, tools, stream: true, stream_options: { include_usage: true } });
for await (const chunk of chunks) {
  if (chunk.usage) usage = chunk.usage;
  const choice = chunk.choices[0];
  if (!choice) continue;
  finish = choice.finish_reason ?? finish;
  for (const delta of choice.delta.tool_calls ?? []) {
    const call = (calls[delta.index] ??= { id: "", type: "", function: { name: "", arguments: "" } });
    call.id += delta.id ?? "";
    call.type += delta.type ?? "";
    call.function.name += delta.function?.name ?? "";
    call.function.arguments += delta.function?.arguments ?? "";
  }
}
answer({ whole, helper, manual: { tool_calls: calls, finish_reason: finish, usage } });
