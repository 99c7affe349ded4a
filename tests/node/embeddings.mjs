// Embeddings as the SDK asks for them (base64 on the wire, decoded to floats by the SDK).
import { answer, gateway, input } from "./client.mjs";

const { model, texts } = input();
const reply = await gateway().embeddings.create({ model, input: texts });
answer({ model: reply.model, usage: reply.usage, vectors: reply.data.map((d) => d.embedding) });
