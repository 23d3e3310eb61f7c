"""Text-to-image (lecture 08): the 08_text_to_image exercise set's reference functions,
captioned digits, CLIP, a KL autoencoder, a text-conditioned latent denoiser, and the small
Stable Diffusion the three shipped models make together.

Every public name is re-exported here, one submodule per responsibility:

* ``functions``: the exercise set's six functions (copied from the solution).
* ``captions``: the attribute measures, the caption grammar, word ids (the module keeps
  its name here: ``captions.captions(images, labels)``).
* ``clip``: ``Clip`` (a CNN image encoder, lecture 07's block as text encoder).
* ``autoencoder``: ``KlAutoencoder``.
* ``latent``: ``LatentDenoiser`` with ``CrossAttention`` to the caption's words.
* ``digits``: the shipped models' recipes (``course pretrain text-to-image``),
  ``generate`` (prompts -> images) and ``evaluate``.
* ``figures``: the lecture's figures (captioned digits, word attention maps).
* ``bench``: ``course bench text-to-image``, the guidance-scale sweep.
"""

from course_utils.text_to_image.autoencoder import KlAutoencoder
from course_utils.text_to_image.bench import bench_text_to_image, format_t2i_bench, load_t2i_bench
from course_utils.text_to_image.captions import attributes, caption, encode, thickness
from course_utils.text_to_image.clip import Clip
from course_utils.text_to_image.digits import (
    class_prompts,
    clip_metrics,
    evaluate,
    generate,
    shipped,
    text_states,
)
from course_utils.text_to_image.functions import (
    clip_loss,
    cross_attention,
    guided_eps,
    latent_scale,
    slant,
    zero_shot_classify,
)
from course_utils.text_to_image.latent import CrossAttention, LatentDenoiser

__all__ = [
    "bench_text_to_image",
    "format_t2i_bench",
    "load_t2i_bench",
    "KlAutoencoder",
    "attributes",
    "caption",
    "encode",
    "thickness",
    "Clip",
    "class_prompts",
    "clip_metrics",
    "evaluate",
    "generate",
    "shipped",
    "text_states",
    "clip_loss",
    "cross_attention",
    "guided_eps",
    "latent_scale",
    "slant",
    "zero_shot_classify",
    "CrossAttention",
    "LatentDenoiser",
]
