// An agent as apps write it: ask with tools, run each call the model makes, send the results
// back (the SDK's own message pushed as is), until the model answers in text. `turns` may set
// each request's extra parameters (a named tool_choice offline, where the small model answers
// `auto` in text, and a max_completion_tokens).
import { answer, gateway, input } from "./client.mjs";

const { model, tools, messages, results, turns = [] } = input(); // results: tool -> output
const client = gateway();
const history = [...messages];
const replies = [];
for (let turn = 0; turn < Math.max(4, turns.length); turn++) {
  const extra = turns[turn] ?? {};
  const reply = await client.chat.completions.create({ model, messages: history, tools, ...extra });
  replies.push(reply);
  const message = reply.choices[0].message;
  if (!message.tool_calls?.length) break;
  history.push(message);
  for (const call of message.tool_calls) {
    JSON.parse(call.function.arguments); // an app parses them before running the tool
    history.push({ role: "tool", tool_call_id: call.id, content: results[call.function.name] });
  }
}
answer({ replies });
