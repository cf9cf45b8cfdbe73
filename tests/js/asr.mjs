// node asr.mjs URL AUDIO_FILE: transcribe AUDIO_FILE with @huggingface/inference against a
// sparkasr serve endpoint; prints the JSON result, or the error on stderr with exit status 1.
import { readFile } from "node:fs/promises";
import { InferenceClient } from "@huggingface/inference";

const [url, file] = process.argv.slice(2);
const client = new InferenceClient();
try {
  const inputs = new Blob([await readFile(file)]);
  // retry_on_error: false, or the client retries a 503 at once, forever
  const out = await client.automaticSpeechRecognition({ endpointUrl: url, inputs }, { retry_on_error: false });
  console.log(JSON.stringify(out));
} catch (err) {
  console.error(String(err?.message ?? err));
  process.exit(1);
}
