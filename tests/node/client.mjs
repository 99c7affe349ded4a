// What every script shares: the official SDK pointed at the gateway the Python test started
// (its URL and key in the environment), the test's input as JSON in argv[2], and the answer
// as one JSON line on stdout for the test to check.
import OpenAI from "openai";

export function gateway() {
  return new OpenAI({
    baseURL: process.env.MINITOOLAI_BASE_URL,
    apiKey: process.env.MINITOOLAI_API_KEY,
    maxRetries: 0, // a retry would hide a failure and charge twice
  });
}

export function input() {
  return JSON.parse(process.argv[2] ?? "{}");
}

export function answer(value) {
  process.stdout.write(JSON.stringify(value) + "\n");
}
