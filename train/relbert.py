"""BERT with relative-position attention, the offline tiny model's architecture, as this project's own model type.

transformers 4.57's BERT implements `position_embedding_type="relative_key"` (Shaw et al. 2018: no absolute
position embeddings; each self-attention layer adds query . distance_embedding[l - r] to the score of query l and
key r); transformers 5 dropped that option and builds absolute positions instead without a word. This module
reproduces 4.57's math and weight names (`bert.encoder.layer.N.attention.self.distance_embedding`, ...) under the
model type MODEL_TYPE, so the model is the same on both lines. Importing it registers the type with AutoConfig and
AutoModelForQuestionAnswering, so save_pretrained folders load with the Auto classes once it is imported.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForQuestionAnswering, PretrainedConfig, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import QuestionAnsweringModelOutput

MODEL_TYPE = "qa-engine-relbert"


class RelBertConfig(PretrainedConfig):
    """BertConfig's fields, less position_embedding_type: positions are always relative (max_position_embeddings
    bounds the distances, |l - r| < max_position_embeddings)."""

    model_type = MODEL_TYPE

    def __init__(
        self,
        vocab_size: int = 30522,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        pad_token_id: int = 0,
        **kwargs,
    ):
        if hidden_size % num_attention_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of the {num_attention_heads} heads")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        super().__init__(pad_token_id=pad_token_id, **kwargs)


class RelBertEmbeddings(nn.Module):
    """Word plus segment embeddings, layer-normed: no position embeddings (4.57 BERT's relative_key embeddings)."""

    def __init__(self, config: RelBertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(embeddings))


class RelBertSelfAttention(nn.Module):
    """Scaled dot-product attention whose scores also get query . distance_embedding[l - r], before the scaling."""

    def __init__(self, config: RelBertConfig):
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.max_position_embeddings = config.max_position_embeddings
        self.query = nn.Linear(config.hidden_size, self.all_head_size)
        self.key = nn.Linear(config.hidden_size, self.all_head_size)
        self.value = nn.Linear(config.hidden_size, self.all_head_size)
        self.distance_embedding = nn.Embedding(2 * config.max_position_embeddings - 1, self.attention_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_attention_heads, self.attention_head_size).transpose(1, 2)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        query = self._heads(self.query(hidden_states))
        key = self._heads(self.key(hidden_states))
        value = self._heads(self.value(hidden_states))
        scores = torch.matmul(query, key.transpose(-1, -2))
        # lengths read off the query and key, as 4.57 does: with the length of the layer's input instead,
        # onnxruntime's optimizer does not fuse the embeddings' layer norm into EmbedLayerNormalization
        left = torch.arange(query.shape[2], dtype=torch.long, device=query.device).view(-1, 1)
        right = torch.arange(key.shape[2], dtype=torch.long, device=key.device).view(1, -1)
        distances = self.distance_embedding(left - right + self.max_position_embeddings - 1).to(dtype=query.dtype)
        scores = scores + torch.einsum("bhld,lrd->bhlr", query, distances)
        scores = scores / math.sqrt(self.attention_head_size) + attention_mask
        probs = self.dropout(nn.functional.softmax(scores, dim=-1))
        context = torch.matmul(probs, value).permute(0, 2, 1, 3).contiguous()
        return context.view(*context.shape[:2], self.all_head_size)


class RelBertResidualOutput(nn.Module):
    """Projection back to the hidden size, dropout, residual and layer norm: BERT's `attention.output` (from the
    heads, `in_features` = hidden) and `output` (from the feed-forward expansion, `in_features` = intermediate)."""

    def __init__(self, config: RelBertConfig, in_features: int):
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class RelBertAttention(nn.Module):
    """Self-attention and its output block (BERT's `attention.self` and `attention.output`)."""

    def __init__(self, config: RelBertConfig):
        super().__init__()
        self.self = RelBertSelfAttention(config)
        self.output = RelBertResidualOutput(config, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(hidden_states, attention_mask), hidden_states)


class RelBertIntermediate(nn.Module):
    """The feed-forward block's expansion and activation."""

    def __init__(self, config: RelBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class RelBertLayer(nn.Module):
    """One transformer layer: attention, then feed-forward."""

    def __init__(self, config: RelBertConfig):
        super().__init__()
        self.attention = RelBertAttention(config)
        self.intermediate = RelBertIntermediate(config)
        self.output = RelBertResidualOutput(config, config.intermediate_size)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        attended = self.attention(hidden_states, attention_mask)
        return self.output(self.intermediate(attended), attended)


class RelBertEncoder(nn.Module):
    """The stack of layers."""

    def __init__(self, config: RelBertConfig):
        super().__init__()
        self.layer = nn.ModuleList(RelBertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            hidden_states = layer(hidden_states, attention_mask)
        return hidden_states


class RelBertPreTrainedModel(PreTrainedModel):
    """Weights are initialized by PreTrainedModel's default _init_weights, which is BERT's for these modules
    (normal(0, initializer_range) Linear and Embedding weights, zero biases and padding row, unit LayerNorms)."""

    config_class = RelBertConfig
    base_model_prefix = "bert"


class RelBertModel(RelBertPreTrainedModel):
    """Embeddings and encoder: the last layer's hidden states."""

    def __init__(self, config: RelBertConfig):
        super().__init__(config)
        self.embeddings = RelBertEmbeddings(config)
        self.encoder = RelBertEncoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        hidden_states = self.embeddings(input_ids, token_type_ids)
        # 0 where a key may be attended to, the dtype's most negative value where it is padding
        mask = (1.0 - attention_mask[:, None, None, :].to(hidden_states.dtype)) * torch.finfo(hidden_states.dtype).min
        return self.encoder(hidden_states, mask)


class RelBertForQuestionAnswering(RelBertPreTrainedModel):
    """Start and end logits per token, with BertForQuestionAnswering's inputs, outputs and loss."""

    def __init__(self, config: RelBertConfig):
        super().__init__(config)
        self.bert = RelBertModel(config)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.bert.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.bert.set_input_embeddings(value)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
    ) -> QuestionAnsweringModelOutput:
        hidden_states = self.bert(input_ids, attention_mask, token_type_ids)
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in self.qa_outputs(hidden_states).split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.size(1)  # labels past the window (clamped to it) do not count
            loss_fct = nn.CrossEntropyLoss(ignore_index=ignored)
            loss = (loss_fct(start_logits, start_positions.view(-1).clamp(0, ignored))
                    + loss_fct(end_logits, end_positions.view(-1).clamp(0, ignored))) / 2
        return QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits)


AutoConfig.register(MODEL_TYPE, RelBertConfig, exist_ok=True)
AutoModelForQuestionAnswering.register(RelBertConfig, RelBertForQuestionAnswering, exist_ok=True)
