"""FCRN model: encoder, up-sampling decoder and losses."""

from pipeline.model.fcrn import FCRN, EncoderWeightsUnavailable, count_parameters

__all__ = ["FCRN", "EncoderWeightsUnavailable", "count_parameters"]
