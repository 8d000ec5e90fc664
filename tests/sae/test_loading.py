"""Loading SAEs: local folders, the registry path (only when allowed; tested on a local Hub cache),
and clear refusals for SAEs that do not fit the model."""

import json
from pathlib import Path

import pytest
import torch

from tests.builders import save_topk_sae
from tinymorph.errors import NetworkDisabledError, SAEError
from tinymorph.sae.loading import load_sae


def load(choice, manifest, **kw):
    return load_sae(choice, manifest, 64, 4, **kw)


def test_a_local_folder_loads_and_names_its_layer(tmp_path, tiny_manifest):
    sae = load(str(save_topk_sae(tmp_path / "s")), tiny_manifest)
    assert (sae.layer, sae.d_in, sae.d_sae) == (2, 64, 32)
    x = torch.randn(3, 64)
    assert sae.encode(x).shape == (3, 32)
    assert (sae.encode(x) > 0).sum(-1).le(4).all()  # TopK, k = 4
    assert sae.directions().shape == (32, 64)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"d_in": 32}, "width 32"),
        ({"model_name": "gpt2"}, "trained on gpt2"),
        ({"hook_name": "blocks.2.hook_mlp_out"}, "not on the residual stream"),
        ({"hook_name": "blocks.9.hook_resid_post"}, "reads layer 9"),
    ],
)
def test_an_sae_for_something_else_is_refused(tmp_path, tiny_manifest, kwargs, message):
    with pytest.raises(SAEError, match=message):
        load(str(save_topk_sae(tmp_path / "s", **kwargs)), tiny_manifest)


def test_a_folder_without_weights_is_refused(tmp_path, tiny_manifest):
    (tmp_path / "cfg.json").write_text("{}")
    with pytest.raises(SAEError, match="sae-lens format"):
        load(str(tmp_path), tiny_manifest)


def test_default_without_a_shipped_sae_says_so(tiny_manifest):
    with pytest.raises(SAEError, match="no SAE is shipped"):
        load("default", tiny_manifest)


def test_registry_needs_the_explicit_option(tiny_manifest):
    with pytest.raises(NetworkDisabledError, match="--allow-downloads"):
        load("gemma-scope-2-270m-pt-res:layer_12_width_16k_l0_medium", tiny_manifest)


def _fake_hub_cache(cache: Path, repo: str, folder: str, sae_dir: Path) -> None:
    """Lay out files as huggingface_hub's cache does, so that an offline hf_hub_download finds them."""
    commit = "0" * 40
    base = cache / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    snap = base / "snapshots" / commit / folder
    snap.mkdir(parents=True)
    for f in sae_dir.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())


def test_registry_path_with_downloads_allowed_reads_the_hub_cache(tmp_path, tiny_manifest, monkeypatch):
    """RELEASE:ID goes through sae-lens's SAE.from_pretrained; a release may be a Hub repo id in
    sae-lens format. Offline, huggingface_hub serves it from its cache: no network in tests."""
    src = save_topk_sae(tmp_path / "src")
    cache = tmp_path / "hf"
    _fake_hub_cache(cache, "someone/tiny-saes", "layer2", src)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    sae = load("someone/tiny-saes:layer2", tiny_manifest, allow_downloads=True)
    assert sae.sae_id == "someone/tiny-saes/layer2" and sae.layer == 2 and sae.folder is None
    assert json.loads((src / "cfg.json").read_text())["d_sae"] == sae.d_sae


@pytest.mark.parametrize("allowed", [True, False])
def test_allow_downloads_really_lets_sae_lens_reach_the_hub(tmp_path, tiny_model_dir, monkeypatch, allowed):
    """`--sae RELEASE:ID --allow-downloads` in a shell command: the Hub is not switched off when
    sae-lens is called (here a local stand-in for its download); without the option it is, and
    nothing is called."""
    import argparse
    import os

    from rich.console import Console
    from sae_lens import SAE

    from tinymorph.cli_common import worker_config
    from tinymorph.commands.features import load_cli_sae
    from tinymorph.config import Settings
    from tinymorph.lm.manifest import resolve_model
    from tinymorph.paths import app_paths

    calls = []

    def hub_stand_in(release, sae_id, device="cpu", dtype="float32"):
        calls.append((release, sae_id, os.environ.get("HF_HUB_OFFLINE")))
        return SAE.load_from_disk(save_topk_sae(tmp_path / "from-hub", model_name=""), device=device, dtype=dtype)

    monkeypatch.setattr(SAE, "from_pretrained", hub_stand_in)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    args = argparse.Namespace(model=str(tiny_model_dir), sae="some-release:layer_2", allow_downloads=allowed or None)
    if allowed:
        _lm, sae, _manifest = load_cli_sae(args, Console(file=open(os.devnull, "w")))  # noqa: SIM115
        assert calls == [("some-release", "layer_2", None)] and sae.sae_id == "some-release/layer_2"
    else:
        with pytest.raises(NetworkDisabledError, match="--allow-downloads"):
            load_cli_sae(args, Console(file=open(os.devnull, "w")))  # noqa: SIM115
        assert calls == [] and os.environ["HF_HUB_OFFLINE"] == "1"
    config = worker_config(Settings(sae="some-release:layer_2", allow_downloads=allowed), app_paths(),
                           resolve_model(str(tiny_model_dir)))
    assert config.allow_hub is allowed  # the worker leaves HF_HUB_OFFLINE unset only when allowed


def test_a_topk_sae_loads_without_sae_lens_and_encodes_as_sae_lens_does(tiny_manifest, tmp_path):
    import subprocess
    import sys

    from sae_lens import SAE

    from tinymorph.sae.loading import NativeTopKSAE

    folder = save_topk_sae(tmp_path / "s")
    loaded = load_sae(str(folder), tiny_manifest, 64, 4)
    assert isinstance(loaded.sae, NativeTopKSAE)
    reference = SAE.load_from_disk(folder, device="cpu", dtype="float32")
    x = torch.randn(5, 7, 64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded.encode(x), reference.encode(x))
    acts = reference.encode(x)
    torch.testing.assert_close(loaded.decode(acts), reference.decode(acts))
    # The editor's worker loads it without importing sae-lens (~3.5 s of a start).
    code = (f"from tinymorph.sae.loading import native_topk; from pathlib import Path; "
            f"native_topk(Path({str(folder)!r})); import sys; print('sae_lens' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
