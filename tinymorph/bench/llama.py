"""The anchor: llama.cpp decoding the same Gemma 3 270M GGUF (Q4_K_M) that tinymorph converts,
through llama-cpp-python's low-level API, in the benchmark's own run.

Owns: `llama_decode_speed`. Needs `llama-cpp-python` (the `bench` extra; it builds llama.cpp from
source on install, a few minutes); the editor never imports it. Measures single-sequence
unsteered decode (the anchor the issue names) and, for comparison with tinymorph's 3 alternatives,
3 sequences decoded together from one shared prompt, with a control vector added at the hook
layer (`llama_set_adapter_cvec`) as the steered case. Greedy: the time is the model's, not the
sampler's.
"""

import ctypes
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_QUIET = None  # the log callback must outlive every llama.cpp call: ctypes does not keep it alive


@dataclass(frozen=True)
class LlamaSpeed:
    """Tokens/s of llama.cpp on the GGUF."""

    single: float
    """One sequence, unsteered."""
    batch3_per_sequence: float
    """3 sequences in one batch, steered by a control vector: tokens/s per sequence."""
    threads: int


def llama_decode_speed(gguf: Path, prompt_ids: list[int], hook_layer: int, threads: int, steps: int = 48) -> LlamaSpeed:
    """Decode `steps` tokens after `prompt_ids` (BOS first), greedily, with `threads` threads.
    Raises ImportError without llama-cpp-python, RuntimeError if llama.cpp refuses the model."""
    import llama_cpp as L

    global _QUIET
    L.llama_backend_init()
    if _QUIET is None:
        _QUIET = L.llama_log_callback(lambda _level, _text, _data: None)
        L.llama_log_set(_QUIET, None)  # llama.cpp prints to stderr otherwise
    model = L.llama_model_load_from_file(str(gguf).encode(), L.llama_model_default_params())
    if not model:
        raise RuntimeError(f"llama.cpp cannot load {gguf}")
    vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    n_embd, n_layer = L.llama_model_n_embd(model), L.llama_model_n_layer(model)
    params = L.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max = 1024, 512, 512, 4
    params.n_threads = params.n_threads_batch = threads
    params.swa_full, params.kv_unified = True, True
    ctx = L.llama_init_from_model(model, params)
    batch = L.llama_batch_init(512, 0, 4)
    memory = L.llama_get_memory(ctx)

    def run(tokens: list[int], positions: list[int], seqs: list[int], want: list[bool]) -> None:
        batch.n_tokens = len(tokens)
        for i, (tok, pos, seq, logits) in enumerate(zip(tokens, positions, seqs, want, strict=True)):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = tok, pos, 1, int(logits)
            batch.seq_id[i][0] = seq
        if L.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    def best(row: int) -> int:
        return int(np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, row), shape=(vocab,)).argmax())

    try:
        n = len(prompt_ids)
        run(prompt_ids, list(range(n)), [0] * n, [i == n - 1 for i in range(n)])
        token, times = best(-1), []
        for step in range(steps):
            t0 = time.perf_counter()
            run([token], [n + step], [0], [True])
            token = best(0)
            times.append(time.perf_counter() - t0)
        single = 1 / statistics.median(times)
        L.llama_memory_seq_rm(memory, 0, n, -1)  # back to the prompt, then three sequences share it
        for seq in (1, 2):
            L.llama_memory_seq_cp(memory, 0, seq, 0, n)
        cvec = np.zeros(n_embd * (n_layer - 1), dtype=np.float32)  # data for layers 1..n_layer-1
        cvec[(hook_layer - 1) * n_embd : hook_layer * n_embd] = np.random.default_rng(0).standard_normal(n_embd) * 100
        L.llama_set_adapter_cvec(ctx, cvec.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), cvec.size, n_embd,
                                 hook_layer, hook_layer)
        tokens, times = [token] * 3, []
        for step in range(steps):
            t0 = time.perf_counter()
            run(tokens, [n + step] * 3, [0, 1, 2], [True] * 3)
            tokens = [best(r) for r in range(3)]
            times.append(time.perf_counter() - t0)
        return LlamaSpeed(single, 1 / statistics.median(times), threads)
    finally:
        L.llama_batch_free(batch)
        L.llama_free(ctx)
        L.llama_model_free(model)
