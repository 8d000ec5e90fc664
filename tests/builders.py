"""Tiny models and SAEs built in code for the tests: nothing is downloaded.

A 4-layer, d_model-64 Gemma 3 with random weights and a character tokenizer, and TopK SAEs in
sae-lens's disk format for it.
"""

import string
from pathlib import Path

TINY_VOCAB = ["<pad>", "<eos>", "<bos>", "<unk>", *(string.printable)]


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """Save a 4-layer, d_model-64 Gemma 3 text model with random weights and a character
    tokenizer in `folder`. Sliding window 32, so the context limit (31 tokens) is exercised."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(TINY_VOCAB))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    config = Gemma3TextConfig(
        vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, sliding_window=32,
        layer_types=["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"],
        max_position_embeddings=512, bos_token_id=2, eos_token_id=1, pad_token_id=0,
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder



TINY_TEXT = (
    "The sea was calm and the boats came home. Waves broke on the shore of the harbour.\n\n"
    "She wrote her letters at night, by a candle, and sent them in the morning.\n\n"
    "The committee argued about the budget for the bridge, the library and the roads.\n\n"
)


def save_topk_sae(
    folder: Path,
    *,
    d_in: int = 64,
    d_sae: int = 32,
    k: int = 4,
    hook_name: str = "blocks.2.hook_resid_post",
    model_name: str = "tiny-gemma3",
    exact: bool = False,
    seed: int = 0,
) -> Path:
    """A TopK SAE in sae-lens format. `exact`: W_enc = [I, -I], W_dec = [I; -I], k = d_in, so that
    every vector is reconstructed exactly (each coordinate by whichever of +e_i / -e_i is positive)."""
    import torch
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    if exact:
        d_sae, k = 2 * d_in, d_in
    cfg = TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k, dtype="float32", device="cpu", apply_b_dec_to_input=True)
    cfg.metadata.hook_name = hook_name
    cfg.metadata.model_name = model_name
    torch.manual_seed(seed)
    sae = TopKSAE(cfg)
    with torch.no_grad():
        if exact:
            eye = torch.eye(d_in)
            sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
            sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
        else:
            sae.W_dec.copy_(torch.nn.functional.normalize(torch.randn(d_sae, d_in), dim=-1))
            sae.W_enc.copy_(sae.W_dec.T)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    sae.save_model(folder)
    return folder
