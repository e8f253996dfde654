// vs_llamacpp.mjs: llama.cpp's prompt processing on a GGUF file, through the
// prebuilt CPU libraries of node-llama-cpp (run by bench/vs_llamacpp.sh).
// usage: node vs_llamacpp.mjs THREADS TOKENS RUNS MODEL.gguf...
// For each model: one context of max(512, TOKENS) positions and batch,
// TOKENS pseudo-random ids (bench_pp.c's generator) evaluated as one
// sequence RUNS times after a warm-up, the history cleared before each;
// prints the best and the median tokens/s.
import {getLlama} from "node-llama-cpp";

const [threads, nTok, runs] = process.argv.slice(2, 5).map(Number);
const models = process.argv.slice(5);
const llama = await getLlama({gpu: false, build: "never", maxThreads: threads, logLevel: "error"});
for (const path of models) {
    const model = await llama.loadModel({modelPath: path, gpuLayers: 0});
    const size = Math.max(512, nTok);
    const ctx = await model.createContext({contextSize: size, batchSize: size, sequences: 1,
                                           threads: {ideal: threads, min: threads}});
    const seq = ctx.getSequence();
    const nv = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
    const ids = [];
    let x = 12345;
    for (let i = 0; i < nTok; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        ids.push(3 + (x % (nv - 3)));
    }
    const tps = [];
    for (let r = -1; r < runs; r++) {
        await seq.clearHistory();
        const t0 = process.hrtime.bigint();
        await seq.evaluateWithoutGeneratingNewTokens(ids);
        const s = Number(process.hrtime.bigint() - t0) / 1e9;
        if (r >= 0)
            tps.push(nTok / s);
    }
    tps.sort((a, b) => a - b);
    const name = path.padEnd(26);
    console.log(`llama.cpp ${name} pp${nTok} x 1 threads ${threads}: best ${tps[runs - 1].toFixed(0).padStart(6)} tok/s, ` +
                `median ${tps[Math.floor(runs / 2)].toFixed(0).padStart(6)} tok/s (${runs} runs)`);
    await ctx.dispose();
    await model.dispose();
}
