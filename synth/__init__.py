"""rvclora.synth: RVC models and their files — synthesizer, content encoder, pitch, index, voices."""

from .content_encoder import ContentEncoder, ContentEncoderError, load_content_encoder

__all__ = ["ContentEncoder", "ContentEncoderError", "load_content_encoder"]
