"""The language model substrate: manifests, preparing and loading the model, hook points on the
residual stream, and the steering hooks.

Layering (checked by tests/test_architecture.py): `lm` imports neither `sae` nor `engine`; `sae`
builds on `lm`; `engine` (generation, the worker) builds on both; `evals` on all three.
`lm.manifest` imports no torch: the editor's process resolves settings with it. Never imports
Textual or the store.
"""
