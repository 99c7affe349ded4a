// Plain chat, whole and streamed with the usage chunk, as most apps use the SDK.
import { answer, gateway, input } from "./client.mjs";

const { model, messages } = input();
const client = gateway();
const whole = await client.chat.completions.create({ model, messages });
let text = "";
let usage = null;
let finish = null;
const stream = await client.chat.completions.create({
  model,
  messages,
  stream: true,
  stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  const choice = chunk.choices[0];
  if (!choice) continue;
  text += choice.delta.content ?? "";
  finish = choice.finish_reason ?? finish;
}
answer({ whole, streamed: { text, usage, finish_reason: finish } });
