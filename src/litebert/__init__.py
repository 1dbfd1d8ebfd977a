"""LiteBERT: parameter-efficient, fast-to-pretrain BERT-style encoders for Hugging Face transformers.

Importing the package registers `LiteBertConfig` and every LiteBERT head with transformers' Auto classes, so
`AutoConfig`, `AutoModel*` and `pipeline` work on LiteBERT folders.
"""

import transformers
from transformers import AutoConfig

from . import hub_cards, modeling_litebert, modeling_objectives  # hub_cards installs the card hook of push_to_hub
from .configuration_litebert import PRESETS, LiteBertConfig
from .modeling_litebert import (
    AUTO_CLASSES,
    LiteBertForMaskedLM,
    LiteBertForMultipleChoice,
    LiteBertForPreTraining,
    LiteBertForPreTrainingOutput,
    LiteBertForQuestionAnswering,
    LiteBertForSequenceClassification,
    LiteBertForTokenClassification,
    LiteBertModel,
    LiteBertPreTrainedModel,
)
from .modeling_objectives import (
    LiteBertForMultipleChoiceCloze,
    LiteBertForMultipleChoiceClozeOutput,
    LiteBertForReplacedTokenDetection,
    LiteBertForReplacedTokenDetectionOutput,
)

__version__ = "0.1.0"

AutoConfig.register(LiteBertConfig.model_type, LiteBertConfig, exist_ok=True)
for _auto_name, _model_class in AUTO_CLASSES.items():
    getattr(transformers, _auto_name).register(LiteBertConfig, _model_class, exist_ok=True)

__all__ = ["PRESETS", "LiteBertConfig", *modeling_litebert.__all__, *modeling_objectives.__all__]
