"""Sparse autoencoders over the residual stream: loading (sae-lens format or registry), hook-point
mapping, training, evaluation and feature data (labels, top contexts, logit effects).

Runs where torch runs (the worker, the `tinymorph sae` / `features` commands). Never imports
Textual or the store.
"""
