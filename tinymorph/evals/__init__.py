"""Evaluations of what the editor does: steering (`steer`). They call the editor's own code
(`engine.generate.Generator.suggest`), never a copy of it. Never import Textual or the store.
"""
