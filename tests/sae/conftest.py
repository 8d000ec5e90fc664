"""SAEs built in code and saved in sae-lens's disk format, for the tiny model (d_model 64)."""

from pathlib import Path

import pytest

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


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A folder of text big enough to give training and held-out sequences at a 32-token length."""
    root = tmp_path / "corpus"
    root.mkdir()
    for i in range(6):
        (root / f"book{i}.txt").write_text((TINY_TEXT * 12).replace("sea", f"sea{i}"), encoding="utf-8")
    (root / "notes.md").write_text("# Notes\n\n" + TINY_TEXT * 4, encoding="utf-8")
    return root
