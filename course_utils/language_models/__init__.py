"""Language models (lecture 07): the 07_language_models exercise set's reference functions,
character and byte-pair tokenizers, ``Gpt`` (multi-head causal attention, a key/value
cache for generation; without the mask, BERT's encoder), its training on random windows
and its loss on a whole split, the shipped GPT and masked LM, the lecture's figures.

Every public name is re-exported here (``language_models.Gpt``,
``language_models.lm_loss``), one submodule per responsibility:

* ``functions``: the exercise set's nine functions (copied from the solution).
* ``tokenizers``: ``CharTokenizer``, ``Bpe`` and ``train_bpe``.
* ``gpt``: ``GptConfig``, ``Gpt``, ``attention_maps``, ``generate`` and ``filter_logits``,
  ``TrainConfig``, ``train_gpt``, ``split_loss``.
* ``shakespeare``: the corpus as character ids, the shipped GPT's and masked LM's recipes
  (``course pretrain gpt_shakespeare``, ``bert_shakespeare``).
* ``figures``: the lecture's figures (tokens, text samples, attention maps).
* ``bench``: ``course bench gpt-shakespeare``, the course's recipe against nanoGPT's CPU
  recipe.
"""

from course_utils.language_models.bench import (
    bench_gpt_shakespeare,
    format_gpt_bench,
    load_gpt_bench,
)
from course_utils.language_models.figures import attention_figure, text_figure, tokens_figure
from course_utils.language_models.functions import (
    dpo_loss,
    lm_loss,
    lora_linear,
    mask_tokens,
    merge_pair,
    most_frequent_pair,
    multi_head_attention,
    response_log_prob,
    top_p_filter,
)
from course_utils.language_models.gpt import (
    Gpt,
    GptConfig,
    TrainConfig,
    attention_maps,
    filter_logits,
    generate,
    learning_rate,
    random_windows,
    split_loss,
    train_gpt,
)
from course_utils.language_models.shakespeare import (
    GPT_SHAKESPEARE,
    shakespeare_ids,
    tokenizer,
    train_gpt_shakespeare,
)
from course_utils.language_models.tokenizers import Bpe, CharTokenizer, pieces, train_bpe

__all__ = [
    "bench_gpt_shakespeare",
    "format_gpt_bench",
    "load_gpt_bench",
    "Bpe",
    "CharTokenizer",
    "Gpt",
    "GptConfig",
    "TrainConfig",
    "dpo_loss",
    "filter_logits",
    "generate",
    "learning_rate",
    "lm_loss",
    "lora_linear",
    "mask_tokens",
    "merge_pair",
    "most_frequent_pair",
    "multi_head_attention",
    "pieces",
    "random_windows",
    "response_log_prob",
    "split_loss",
    "top_p_filter",
    "train_bpe",
    "train_gpt",
    "GPT_SHAKESPEARE",
    "shakespeare_ids",
    "tokenizer",
    "train_gpt_shakespeare",
    "attention_maps",
    "attention_figure",
    "text_figure",
    "tokens_figure",
]
