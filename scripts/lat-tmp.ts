import { DecoderStudent } from '../runtime/student/decoder-model';
async function main() {
  const [threads, ...folders] = process.argv.slice(2);
  const inputs = ['wake me up at seven tomorrow', 'play some jazz by miles davis in the kitchen', 'what is the weather like in paris this weekend', 'remind me to call mom on friday', 'turn off the lights in the living room'];
  for (const folder of folders) {
    const m = await DecoderStudent.load(folder, { threads: Number(threads) });
    for (const i of inputs) await m.predict(i, { maxNewTokens: 4 });
    const lat: number[] = []; const pre: number[] = []; let toks = 0;
    for (let r = 0; r < 3; r++) for (const i of inputs) { const p = await m.predict(i, { maxNewTokens: 24 }); lat.push(p.latencyMs); pre.push(p.prefillMs); toks += p.tokenIds.length; }
    lat.sort((a, b) => a - b); pre.sort((a, b) => a - b);
    const n = lat.length;
    console.log(folder, `threads ${threads} p50 ${lat[n >> 1].toFixed(0)} ms prefill p50 ${pre[n >> 1].toFixed(1)} ms, tokens/call ${(toks / n).toFixed(1)}, per token ${((lat[n >> 1] - pre[n >> 1]) / (toks / n)).toFixed(1)} ms`);
    await m.release();
  }
}
main();
