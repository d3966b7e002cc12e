"""The model to fine-tune and its tokenizer: a hub id or local folder, or a tiny config trained from scratch."""
from __future__ import annotations

import inspect
import logging
from pathlib import Path

import torch

from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    DistilBertConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    RobertaConfig,
    XLMRobertaConfig,
)

from .relbert import RelBertConfig
from .weights import refuse_unused_weights

log = logging.getLogger(__name__)

TINY_FAMILIES = ("distilbert", "bert", "roberta", "xlm-roberta")
MODEL_CONFIGS = ("tiny",)

# Tiny shapes: small enough to train from scratch on 2 CPU cores in minutes.
TINY_DIM = 128
TINY_LAYERS = 2
TINY_HEADS = 4
TINY_FFN = 512
TINY_MAX_POSITIONS = 512
TINY_BERT_LAYERS = 3
TINY_EMBEDDING_STD = 1.0  # unit-scale character embeddings: ones rarely or never trained stay distinct
TINY_MATCH_HEADS = 2  # first-layer BERT heads that start out comparing tokens by identity


def tiny_config(family: str, vocab_size: int, pad_token_id: int = 0) -> PretrainedConfig:
    """A small DistilBERT, BERT, RoBERTa or XLM-RoBERTa config (BERT has token_type_ids) for `vocab_size` tokens.

    The "bert" one (3 layers) is this project's relative-position BERT (train.relbert, 4.57 BERT's relative_key
    attention on any transformers): "the value a few tokens after the subject the question names" is a relative
    pattern. Measured on the synthetic data, 3,000 steps took a 2-layer one to about 90 EM on held-out names,
    against about 35 for the same model with absolute position embeddings. onnxruntime has no fused kernel for
    that attention, so its export keeps attention unfused."""
    if family == "distilbert":
        return DistilBertConfig(
            vocab_size=vocab_size,
            dim=TINY_DIM,
            n_layers=TINY_LAYERS,
            n_heads=TINY_HEADS,
            hidden_dim=TINY_FFN,
            max_position_embeddings=TINY_MAX_POSITIONS,
            dropout=0.0,  # from scratch on synthetic data, dropout only slows learning
            attention_dropout=0.0,
            pad_token_id=pad_token_id,
        )
    if family == "bert":
        return RelBertConfig(
            vocab_size=vocab_size,
            hidden_size=TINY_DIM,
            num_hidden_layers=TINY_BERT_LAYERS,
            num_attention_heads=TINY_HEADS,
            intermediate_size=TINY_FFN,
            max_position_embeddings=TINY_MAX_POSITIONS,
            type_vocab_size=2,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            pad_token_id=pad_token_id,
        )
    if family in ("roberta", "xlm-roberta"):
        config_class = RobertaConfig if family == "roberta" else XLMRobertaConfig
        return config_class(
            vocab_size=vocab_size,
            hidden_size=TINY_DIM,
            num_hidden_layers=TINY_LAYERS,
            num_attention_heads=TINY_HEADS,
            intermediate_size=TINY_FFN,
            # positions are numbered from pad_token_id + 1, as in roberta-base (514 positions, pad id 1)
            max_position_embeddings=TINY_MAX_POSITIONS + pad_token_id + 1,
            type_vocab_size=1,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            pad_token_id=pad_token_id,
        )
    raise ValueError(f"unknown tiny model family {family!r}; choose one of {', '.join(TINY_FAMILIES)}")


def _load_tokenizer(name_or_path: str) -> PreTrainedTokenizerFast:
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"cannot load a tokenizer from {name_or_path!r}: not a local tokenizer folder and not "
            f"available from the hub or its cache ({e})"
        ) from e
    if not tokenizer.is_fast:
        raise ValueError(f"tokenizer {name_or_path!r} is not a fast (Rust) tokenizer; qa-engine needs one")
    return tokenizer


def _init_for_matching(model: PreTrainedModel, pad_token_id: int) -> None:
    """Start the tiny BERT able to compare tokens: unit-scale character embeddings and TINY_MATCH_HEADS first-layer
    heads with identity query and key maps, so each token attends to the other occurrences of its character.

    Telling "민지는 대전에 삽니다. 준호는 광주에 삽니다." apart takes matching the question's subject with the
    context's; from the default init (std 0.02) the model did not learn that in the budget (25 EM on such
    contexts, chance level, with 63 overall) and with this init it does."""
    embeddings = model.get_input_embeddings().weight
    attention = model.base_model.encoder.layer[0].attention.self
    width = TINY_MATCH_HEADS * attention.attention_head_size
    with torch.no_grad():
        embeddings.normal_(0.0, TINY_EMBEDDING_STD)
        embeddings[pad_token_id].zero_()
        for linear in (attention.query, attention.key):
            linear.weight[:width].zero_()
            linear.bias[:width].zero_()
            linear.weight[:width, :width] += torch.eye(width)


def load_model(
    name_or_path: str, model_config: str | None = None, tokenizer_dir: str | Path | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A question-answering model and its fast tokenizer.

    With `model_config="tiny"`, `name_or_path` names the family (one of TINY_FAMILIES), the weights are
    freshly initialized and `tokenizer_dir` is required; otherwise `name_or_path` is a hub id or a local
    folder and the tokenizer comes from `tokenizer_dir` when given, else from the same place.
    """
    if model_config is not None and model_config not in MODEL_CONFIGS:
        raise ValueError(f"unknown model config {model_config!r}; choose one of {', '.join(MODEL_CONFIGS)}")
    if model_config == "tiny":
        if tokenizer_dir is None:
            raise ValueError("--model-config tiny trains from scratch and needs --tokenizer (a tokenizer folder)")
        tokenizer = _load_tokenizer(str(tokenizer_dir))
        config = tiny_config(name_or_path, len(tokenizer), tokenizer.pad_token_id or 0)
        model = AutoModelForQuestionAnswering.from_config(config)
        if name_or_path == "bert":
            _init_for_matching(model, config.pad_token_id)
        log.info("new tiny %s model: %.2fM parameters", name_or_path, model.num_parameters() / 1e6)
        return model, tokenizer
    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"cannot load model {name_or_path!r}: not a local model folder and not available from the hub "
            f"or its cache (offline, or a misspelt id?) ({e})"
        ) from e
    tokenizer = _load_tokenizer(str(tokenizer_dir or name_or_path))
    try:
        model, info = AutoModelForQuestionAnswering.from_pretrained(name_or_path, config=config,
                                                                    output_loading_info=True)
    except ValueError as e:  # a config whose architecture has no question-answering head
        raise ValueError(f"model {name_or_path!r} cannot be loaded for question answering: {e}") from e
    refuse_unused_weights(model, info, name_or_path)
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(
            f"tokenizer has {len(tokenizer)} tokens but model {name_or_path!r} embeds only {model.config.vocab_size}"
        )
    return model, tokenizer


def model_input_names(model: PreTrainedModel) -> tuple[str, ...]:
    """The window arrays this model uses: DistilBERT takes no token_type_ids, and RoBERTa-family models have
    one segment (type_vocab_size 1), so a BERT-style template's type id 1 (klue/roberta-base's tokenizer)
    would index past it; their ONNX export takes no token_type_ids either."""
    params = inspect.signature(model.forward).parameters
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in params and getattr(model.config, "type_vocab_size", 2) > 1:
        names.append("token_type_ids")
    return tuple(n for n in names if n in params)
