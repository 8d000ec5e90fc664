"""The Textual UI: the only package that imports Textual.

Talks to the engine only through `engine.client.EngineClient` and its protocol events, and
to the store through `store.Store`.
"""
