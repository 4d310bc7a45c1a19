"""FCRN model: encoder, up-sampling decoder and losses; the authors' graph (`OfficialFCRN`)."""

from pipeline.model.fcrn import FCRN, EncoderWeightsUnavailable, count_parameters
from pipeline.model.official import OfficialFCRN

__all__ = ["FCRN", "EncoderWeightsUnavailable", "OfficialFCRN", "count_parameters"]
