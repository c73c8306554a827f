"""rvclora.synth: RVC models and their files — synthesizer, content encoder, pitch, index, voices.

Import the module you need (e.g. ``rvclora.synth.content_encoder``): this package imports
nothing itself, so the command line can load its option parsers without torch.
"""
