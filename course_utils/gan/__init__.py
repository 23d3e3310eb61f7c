"""GANs (lecture 02): the reference losses, the toy recipes (``CONFIGS``) and
``train_toy_gan``, discriminator rejection sampling, ``train_cyclegan``, the shipped DCGANs
and their recipes, ``course bench gan`` and the widget figures, one submodule each.

Every public name is re-exported here (``gan.train_toy_gan``, ``gan.DcganGenerator``), and
importing the package registers the recipes of ``dcgan_mnist`` and ``cgan_mnist`` and
``course bench gan``.

* ``losses``: the reference losses of the 02_gan exercise set (copied from the solution),
  plus LSGAN's and the R1 penalty.
* ``toy``: ``ToyGanConfig`` and ``CONFIGS`` (GAN, WGAN, WGAN-GP, SN-GAN, R1-GAN),
  ``train_toy_gan`` on 2D mixtures, ``rejection_sample`` (discriminator rejection
  sampling).
* ``cyclegan``: ``train_cyclegan``, CycleGAN between two unpaired 2D point sets.
* ``dcgan``: ``DcganGenerator`` / ``DcganDiscriminator`` (the shipped ``dcgan_mnist`` and
  ``cgan_mnist``), ``train_dcgan`` and their recipes.
* ``bench``: ``course bench gan`` and its shipped results.
* ``figures``: the lecture's widget figures and the Dirac-GAN's path.

Scores and logits are ``[B]`` tensors (one per example); toy data is ``[B, 2]``; images
are ``[B, 1, 28, 28]``, in [-1, 1] for the tanh generator.
"""

from course_utils.gan.bench import (
    DRS_FINE_TUNE_STEPS,
    GAN_VARIANTS,
    bench_cpu_seconds,
    bench_gan,
    format_gan_bench,
    load_gan_bench,
)
from course_utils.gan.cyclegan import CycleGanRun, train_cyclegan
from course_utils.gan.dcgan import (
    DcganDiscriminator,
    DcganGenerator,
    pretrain_cgan_mnist,
    pretrain_dcgan_mnist,
    train_dcgan,
)
from course_utils.gan.figures import (
    DIRAC_UPDATES,
    cyclegan_figure,
    dirac_gan_figure,
    dirac_gan_path,
    gan_snapshot_figure,
)
from course_utils.gan.losses import (
    clip_weights_,
    critic_loss,
    cycle_consistency_loss,
    discriminator_loss,
    generator_loss_minimax,
    generator_loss_nonsaturating,
    gradient_penalty,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    power_iteration,
    r1_penalty,
    wgan_generator_loss,
)
from course_utils.gan.toy import (
    CONFIGS,
    Mlp,
    Snapshot,
    ToyGanConfig,
    ToyGanRun,
    rejection_sample,
    train_toy_gan,
)

__all__ = [
    "DRS_FINE_TUNE_STEPS",
    "CONFIGS",
    "DIRAC_UPDATES",
    "GAN_VARIANTS",
    "CycleGanRun",
    "DcganDiscriminator",
    "DcganGenerator",
    "Mlp",
    "Snapshot",
    "ToyGanConfig",
    "ToyGanRun",
    "bench_cpu_seconds",
    "bench_gan",
    "clip_weights_",
    "critic_loss",
    "cycle_consistency_loss",
    "cyclegan_figure",
    "dirac_gan_figure",
    "dirac_gan_path",
    "discriminator_loss",
    "format_gan_bench",
    "gan_snapshot_figure",
    "generator_loss_minimax",
    "generator_loss_nonsaturating",
    "gradient_penalty",
    "load_gan_bench",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "power_iteration",
    "pretrain_cgan_mnist",
    "pretrain_dcgan_mnist",
    "r1_penalty",
    "rejection_sample",
    "train_cyclegan",
    "train_dcgan",
    "train_toy_gan",
    "wgan_generator_loss",
]
