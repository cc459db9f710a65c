"""``ferrograd.gan``: generative adversarial networks.

:class:`GAN` trains any generator / discriminator pair of ``nn.Module`` s with alternating
steps, the non-saturating generator loss, optional one-sided label smoothing and separate
optimizers (Adam, lr 2e-4, betas (0.5, 0.999) by default), with a progress bar showing both
losses::

    gan = GAN(G, D, latent_dim=16)
    history = gan.fit(X, epochs=100, batch_size=128)   # history.history["d_loss"], ["g_loss"]
    samples = gan.sample(1000)

examples/gan_mixture.py (8 Gaussians on a ring) and examples/dcgan_digits.py (a DCGAN with
ConvTranspose2d on the 8x8 digits) show it at work.
"""

from .gan import GAN

__all__ = ["GAN"]
